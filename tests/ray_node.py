"""A Ray worker node on 127.0.0.1 joining a cluster, until SIGTERM (see ``tests/ray_cluster.start_node``).

python tests/ray_node.py GCS_ADDRESS TEMP_DIR NUM_CPUS RESOURCES_JSON
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

from ray._private.node import Node
from ray._private.parameter import RayParams


def main() -> None:
    address, temp_dir, num_cpus, resources = sys.argv[1:5]
    params = RayParams(
        node_ip_address="127.0.0.1",
        gcs_address=address,
        temp_dir=temp_dir,
        num_cpus=int(num_cpus),
        resources=json.loads(resources),
        object_store_memory=150 * 1024 * 1024,
        min_worker_port=0,
        max_worker_port=0,
    )
    node = Node(params, head=False, shutdown_at_exit=False, spawn_reaper=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        node.kill_all_processes(check_alive=False, allow_graceful=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
