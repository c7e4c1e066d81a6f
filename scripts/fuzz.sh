#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan into build-fuzz/ and runs each for
# a bounded time (default 60 s, first argument overrides), seeded from proto/vectors and
# fuzz/seeds. A crash fails the script and leaves the reproducer in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if [[ ! -f build-fuzz/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPODRELAY_FUZZ=ON -DPODRELAY_SANITIZE=ON -DPODRELAY_BENCH=OFF >/dev/null
fi
cmake --build build-fuzz --target fuzz_frame_decoder fuzz_redis_reply fuzz_resp_request \
  fuzz_push_reader

corpus=build-fuzz/corpus
mkdir -p "$corpus/frame_decoder" "$corpus/redis_reply" "$corpus/resp_request" "$corpus/push_reader"
# Each vector becomes a seed; the leading byte is the chunk-size selector of the target.
python3 - "$corpus/frame_decoder" <<'PY'
import json, sys, os
d = json.load(open("proto/vectors/frames.json"))
for group in ("valid", "malformed"):
    for v in d[group]:
        with open(os.path.join(sys.argv[1], group + "-" + v["name"]), "wb") as f:
            f.write(b"\x07" + bytes.fromhex(v["hex"]))
PY
cp fuzz/seeds/redis_reply/* "$corpus/redis_reply/"
# The push reader reads the same streams (same leading chunk-size byte), compared with hiredis.
cp fuzz/seeds/redis_reply/* fuzz/seeds/push_reader/* "$corpus/push_reader/"
# Two leading bytes: the chunk-size selector and the configuration flags of the target.
cp fuzz/seeds/resp_request/* "$corpus/resp_request/"
# Inputs that once crashed a target stay in its corpus.
cp fuzz/regressions/frame_decoder/* "$corpus/frame_decoder/"
cp fuzz/regressions/redis_reply/* "$corpus/redis_reply/"
cp fuzz/regressions/redis_reply/* fuzz/regressions/push_reader/* "$corpus/push_reader/"

for t in frame_decoder redis_reply resp_request push_reader; do
  echo "fuzz: $t for ${seconds}s"
  if ! (cd build-fuzz && ./bin/fuzz_$t -max_total_time="$seconds" -print_final_stats=1 \
    -rss_limit_mb=2048 "corpus/$t" 2>&1 | tail -n 12); then
    echo "fuzz: $t found a crash (reproducer in build-fuzz/)" >&2
    exit 1
  fi
done
