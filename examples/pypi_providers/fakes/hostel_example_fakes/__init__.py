"""Small fake providers the real ones in this example depend on: datasetio rows, embeddings, nothing else."""
