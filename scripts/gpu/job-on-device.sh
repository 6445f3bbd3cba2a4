#!/usr/bin/env bash
# Runs the sps2 Flink job itself (embedded Kafka broker + Flink MiniCluster + the CUDA backend) on the GPU
# machine. Its class path (Flink, Kafka, Scala, JCuda: ~100 MB of jars) and a Java runtime that Flink and Kafka
# accept (~54 MB) do not fit the 64 MiB a device call carries, so they travel in two calls made back to back
# while the machine stays warm: the jars are rewritten uncompressed so that xz can compress across them, and
# split in two parts.
#
#   scripts/gpu/job-on-device.sh pack
#       here: builds the project, writes <main>/.device-job-a (runtime + half the jars) and <main>/.device-job-b
#       (the other half, stories260K.gguf, the Mooncake trace), each with this script. Both folders are ignored.
#   bash .device-job-a/job-on-device.sh unpack            (device call 1, carry .device-job-a)
#   bash .device-job-b/job-on-device.sh unpack run [what]  (device call 2, carry .device-job-b)
#       what: stories (demo on stories260K, CUDA against CPU tokens), tests (the CUDA tests and the shard engine's),
#       tbt (one 4K request decoding alone), sp (32K prompts at SP 1/2/4 and 128K at SP 4, shards on the one GPU),
#       bench (the trace benchmark on the 1B shape, sps2 against Sarathi on the one GPU); default stories,bench.
#       tbt and bench run once per CUDA kernel set in $SPS2_KERNELS (default invariant,fast).
#       Logs and the bench report go to $OUT.
set -euo pipefail
mode=${1:?usage: job-on-device.sh pack | unpack [run [stories,bench]]}

if [[ $mode == pack ]]; then
  repo=$(cd "$(dirname "$0")/../.." && pwd)
  main=${SPS2_DEVICE_REPO:-/work/main}
  shared=${SPS2_SHARED:-$repo/../shared}
  cd "$repo"
  mvn -o -q -B -DskipTests package
  # The run needs neither PDF export (pdfbox, fontbox, graphics2d), Kafka's command-line tools (argparse4j),
  # scala-reflect nor the profiler: left out, checked by running the demo on the trimmed class path.
  # bench/ holds the entry point of every command (sps2.bench.Main) and the benchmarks; its class path has the job's jars.
  cp=$(ls bench/target/sps2-bench-*.jar | head -1):$(cat bench/target/classpath.txt):$(cat bench/target/classpath-provided.txt)
  tmp=$(mktemp -d)
  python3 - "$tmp" "$cp" <<'EOF'
import os, re, sys, zipfile
out, cp = sys.argv[1], sys.argv[2]
skip = re.compile(r"pdfbox|fontbox|graphics2d|VectorGraphics2D|async-profiler|scala-reflect|argparse4j|animated-gif")
foreign = re.compile(r"(darwin|win32|windows|aix|freebsd|Mac|aarch64|ppc64|s390x|riscv64|loongarch64|/arm/|/i386/|/x86/).*\.(so|dll|dylib|jnilib|a)$|\.(dll|dylib|jnilib)$")
jars = [j for j in dict.fromkeys(cp.split(":")) if j.endswith(".jar") and os.path.isfile(j) and not skip.search(j)]
sizes = []
for j in jars:
    dst = os.path.join(out, "jars", os.path.basename(j))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with zipfile.ZipFile(j) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if not foreign.search(info.filename):
                zout.writestr(info.filename, zin.read(info.filename), compress_type=zipfile.ZIP_STORED)
    sizes.append((os.path.getsize(dst), os.path.basename(dst)))
# two groups of about equal size once compressed; group a also carries the runtime (about 32 MB as .tar.xz, which is
# worth about 110 MiB of these jars: they compress about 3.5 to 1), so it starts that far ahead
sizes.sort(reverse=True)
a, b, sa, sb = [], [], 110 << 20, 0
for s, n in sizes:
    (a if sa < sb else b).append(n)
    if sa < sb:
        sa += s
    else:
        sb += s
for g, names in (("a", a), ("b", b)):
    with open(os.path.join(out, "group-" + g), "w") as f:
        f.write("\n".join(names) + "\n")
print(f"{len(jars)} jars, {sum(s for s, _ in sizes) >> 20} MiB uncompressed; part a {len(a)} jars, part b {len(b)} jars")
EOF
  for g in a b; do
    dir=$main/.device-job-$g
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$tmp/jars" && tar cf - $(cat "$tmp/group-$g")) | xz -6 -T2 > "$dir/jars-$g.tar.xz"
    cp scripts/gpu/job-on-device.sh "$dir/"
  done
  # Flink and Kafka need much of Java SE (java.sql, java.desktop's java.beans, SASL, JMX): the whole of it.
  jlink --add-modules java.se,jdk.unsupported,jdk.incubator.vector,jdk.management,jdk.zipfs,jdk.crypto.ec,jdk.security.auth,jdk.naming.dns,jdk.net,jdk.jfr,jdk.httpserver,jdk.management.agent \
    --strip-debug --no-header-files --no-man-pages --compress=2 --output "$tmp/jre"
  tar -C "$tmp" -cJf "$main/.device-job-a/jre.tar.xz" jre
  cp "$shared/models/stories260K.gguf" "$shared/traces/mooncake_conversation.jsonl" "$main/.device-job-b/"
  # the CUDA tests and the shard engine's tests, with the JUnit console launcher, for `run tests`
  mvn -o -q -B test-compile
  junit=$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/1.11.4/junit-platform-console-standalone-1.11.4.jar
  [[ -f $junit ]] || mvn -q -B dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4
  tests=$(mktemp -d)
  jar cf "$tests/sps2-gpu-tests.jar" -C gpu/target/test-classes .
  jar cf "$tests/sps2-operators-tests.jar" -C operators/target/test-classes .
  jar cf "$tests/sps2-tests-tests.jar" -C tests/target/test-classes .
  cp "$junit" "$tests/"
  tar -C "$tests" -cJf "$main/.device-job-b/tests.tar.xz" .
  rm -rf "$tests"
  rm -rf "$tmp"
  du -sh "$main/.device-job-a" "$main/.device-job-b"
  exit 0
fi

# ---- device side ----
here=$(cd "$(dirname "$0")" && pwd)
root=/tmp/sps2job
out=${OUT:-/tmp/sps2job-out}
mkdir -p "$root/lib" "$out"
if [[ $mode == unpack ]]; then
  [[ -f $here/jre.tar.xz ]] && tar -C "$root" -xJf "$here/jre.tar.xz"
  for f in "$here"/jars-*.tar.xz; do tar -C "$root/lib" -xJf "$f"; done
  if [[ -f $here/tests.tar.xz ]]; then mkdir -p "$root/tests" && tar -C "$root/tests" -xJf "$here/tests.tar.xz"; fi
  cp "$here"/*.gguf "$here"/*.jsonl "$root/" 2>/dev/null || true
  echo "unpacked: $(ls "$root/lib" | wc -l) jars, runtime $([[ -x $root/jre/bin/java ]] && echo yes || echo missing)"
  shift
  [[ ${1:-} == run ]] || exit 0
fi
what=${2:-stories,bench}
kernels=${SPS2_KERNELS:-invariant,fast}  # the CUDA kernel sets that tbt and bench run, one after the other
[[ -x $root/jre/bin/java ]] || { echo "no Java runtime in $root: run part a's unpack first, on the same warm machine"; exit 1; }
cp_=$(ls "$root"/lib/*.jar | tr '\n' ':')
sps2() {
  "$root/jre/bin/java" -Xss4m -Xmx48g --add-modules jdk.incubator.vector \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/java.lang.invoke=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.time=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens java.base/java.text=ALL-UNNAMED \
    -Djava.io.tmpdir=/tmp -cp "$cp_" sps2.bench.Main "$@" 2>&1 | grep --line-buffered -v "^WARNING: Using incubator modules"
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader || true
set +e
if [[ $what == *stories* ]]; then
  echo "=== stories260K: generate on the CPU, then the Flink job (embedded Kafka + MiniCluster) on CUDA, greedy"
  sps2 generate --model "$root/stories260K.gguf" --prompt "Once upon a time" --max-tokens 64 --temperature 0 | tee "$out/stories-cpu.log"
  sps2 demo --backend cuda --model "$root/stories260K.gguf" --max-tokens 64 --temperature 0 --ids "Once upon a time" | tee "$out/stories-cuda.log"
  sps2 demo --backend cuda --sp-degree 2 --model "$root/stories260K.gguf" --max-tokens 64 --temperature 0 --ids "Once upon a time" | tee "$out/stories-cuda-sp2.log"
fi
m1b() { [[ -f /tmp/m1b/config.json ]] || sps2 make-model --shape llama-3.2-1b --out /tmp/m1b | tail -2; }
if [[ $what == *tests* ]]; then
  echo "=== the CUDA tests and the shard engine's tests on the GPU"
  junit() {  # $1: log name; then --select-class arguments
    local log=$1
    shift
    # the launcher and the tests on the JVM's class path, not the launcher's -cp: the embedded broker loads classes
    # by name on threads of the common pool, whose context loader is the JVM's (ClassNotFoundException otherwise)
    "$root/jre/bin/java" --add-modules jdk.incubator.vector \
      -cp "$cp_:$root/tests/sps2-gpu-tests.jar:$root/tests/sps2-operators-tests.jar:$root/tests/sps2-tests-tests.jar:$(ls "$root"/tests/junit-platform-console-standalone-*.jar)" \
      org.junit.platform.console.ConsoleLauncher execute "$@" --details=tree --disable-banner 2>&1 | grep -v "WARNING: Using incubator" | tee "$out/$log.log" | grep -E "✘|tests (successful|failed|skipped)|Exception|expected" | head -40
  }
  junit tests --select-class sps2.gpu.cuda.CudaBackendTest --select-class sps2.gpu.cuda.CudaCpuParityTest --select-class sps2.gpu.cuda.CudaSamplingTest \
    --select-class sps2.gpu.cuda.CudaExchangeTest --select-class sps2.gpu.cuda.CudaHandoffTest --select-class sps2.gpu.cuda.CudaFusedKernelsTest \
    --select-class sps2.operators.shard.ShardEngineTest --select-class sps2.gpu.cuda.GemmPlannerTest
  # the batch-invariant kernels in a JVM of their own: a kernel that faults leaves its context unusable for the process
  echo "--- the batch-invariant kernels"
  junit tests-invariant --select-class sps2.gpu.cuda.CudaBatchInvarianceTest --select-class sps2.tests.GpuRecoveryTest
fi
if [[ $what == *tbt* ]]; then
  echo "=== TBT of one request with a 4K prompt alone, the job on the GPU (1B shape), sps2 SP 1"
  m1b
  for k in ${kernels//,/ }; do
    echo "--- kernels $k"
    sps2 bench-decode --model /tmp/m1b --backend cuda --kernels $k --modes sps2 --short 1 --short-prompt-tokens 4096 --decode-tokens ${SPS2_TBT_TOKENS:-300} \
      --long 0 | tee "$out/tbt-$k.log" | grep -vE "^(WARNING|SLF4J)"
  done
fi
if [[ $what == *sp* ]]; then
  echo "=== SP prefill in the job on the one GPU (1B shape): 32K at SP 1, 2, 4; then 128K at SP 4"
  m1b
  sps2 bench-sp --model /tmp/m1b --backend cuda --degrees 1,2,4 --prompt-tokens 32768 --kv-blocks 9000 | tee "$out/sp32k.log" | grep -vE "^(WARNING|SLF4J)"
  sps2 bench-sp --model /tmp/m1b --backend cuda --degrees 4 --prompt-tokens 131000 --repeat 1 --kv-blocks 9000 | tee "$out/sp128k.log" | grep -vE "^(WARNING|SLF4J)"
fi
if [[ $what == *bench* ]]; then
  echo "=== the trace benchmark on the Llama-3.2-1B shape (random weights), one H100, sps2 against Sarathi"
  m1b
  for k in ${kernels//,/ }; do
    echo "--- kernels $k"
    sps2 bench --trace "$root/mooncake_conversation.jsonl" --model /tmp/m1b --backend cuda --kernels $k --mode both --sp-degree 1 \
      --max-requests ${SPS2_BENCH_REQUESTS:-40} --length-scale ${SPS2_BENCH_LENGTH:-0.5} --kv-memory-gb 40 --timeout 4 --no-progress --out "$out/bench-$k" \
      | tee "$out/bench-$k.log"
  done
  [[ -n ${SPS2_BENCH_CHUNK2048:-} ]] || exit 0
  # Sarathi again with a larger chunk: fewer iterations (each costs a pass through every stage operator) for a
  # shorter TTFT, at the price of longer gaps between tokens.
  sps2 bench --trace "$root/mooncake_conversation.jsonl" --model /tmp/m1b --backend cuda --mode sarathi --sp-degree 1 --chunk-size 2048 \
    --max-requests ${SPS2_BENCH_REQUESTS:-40} --length-scale ${SPS2_BENCH_LENGTH:-0.5} --kv-memory-gb 40 --timeout 4 --no-progress --out "$out/bench-chunk2048" \
    | tee "$out/bench-chunk2048.log"
fi
