"""The bare fork()+_exit()+waitpid() rate of this interpreter: a ceiling for any fork server.

    python -m bench.forkloop SECONDS

Prints one JSON line: {"forks": N, "seconds": S, "forks_per_s": R}.
"""

import json
import os
import sys
import time


def main() -> None:
    seconds = float(sys.argv[1])
    forks = 0
    start = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        if os.fork() == 0:
            os._exit(0)
        os.waitpid(-1, 0)
        forks += 1
    elapsed = time.monotonic() - start
    print(
        json.dumps(
            {"forks": forks, "seconds": round(elapsed, 3), "forks_per_s": round(forks / elapsed, 1)}
        )
    )


if __name__ == "__main__":
    main()
