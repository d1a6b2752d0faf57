"""How the host talks to workers and workers back to the host: one ``Channel`` per worker (``channel``, with
its long-lived ``session``), the callback service providers' ``deps`` reach (``callbacks``), and the one
table from gRPC statuses to hostel errors (``grpc_errors``).
"""
