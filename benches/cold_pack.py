"""One cold one-shot run in a fresh interpreter: ``python -m benches.cold_pack IMPLEMENTATION BUDGET COUNT``.

The library is imported and has packed one small unrelated conversation (so the vocabulary is loaded, as in
any process that has packed before), but it has never seen these conversations: no remembered counts, no
piece cache. Prints the seconds one pass over the ``COUNT`` largest transcripts took, as JSON.
"""

from __future__ import annotations

import json
import sys
import time

from benches.test_bench_messages import CONVERSATIONS, PEERS


def main(implementation: str, budget: int, count: int) -> None:
    pack = PEERS[implementation]()
    pack([{"role": "user", "content": "warm up the library, not the data"}], budget)
    cases = CONVERSATIONS[:count]
    start = time.perf_counter()
    for messages in cases:
        pack(messages, budget)
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
