#!/usr/bin/env bash
# One script for the GPU machine (H100, driver 580 / CUDA 13, PyTorch, no Java).
#
#   scripts/gpu/run-on-device.sh pack
#       here: builds the gpu jars (mvn -o, nvcc -> PTX), gathers jcuda + natives + slf4j + the JUnit console
#       launcher, makes a jlinked JDK 17 runtime (cached), and copies everything with this script and its
#       python peers into <main checkout>/.device-carry (ignored by git; the device tool ships that tree),
#       or into $SPS2_CARRY (a folder of the main checkout that .git/info/exclude ignores, e.g. .device-carry-NAME).
#       With SPS2_CARRY_JRE=0 it carries no runtime (19 MB instead of 40) and uses the job's, which
#       `job-on-device.sh unpack` of part a left on the same warm machine: then it fits one call beside part b.
#   bash .device-carry/run-on-device.sh device [quick|full] [copy,gemm,gemv,prefill,decode]
#       on the device: runs the CUDA tests, the kernel benchmarks (CudaBench), the PyTorch peer on the
#       same shapes, and prints one table (ours vs torch vs floor). Logs go to $OUT.
#   bash .device-carry/run-on-device.sh device sp,attn [lengths]
#       on the device, in one call: the sequence-parallel dry run (GpuSpDryRun: 1B shape, SP degree 1/2/4,
#       dense and strided:4, all shards on the one GPU; prompt lengths default 8192,32768), the CUDA tests
#       (every prefill variant against float64), the prefill attention variants (CudaBench prefill: each
#       checked against w8 on the bench inputs, then timed in two rounds) beside torch SDPA, and the tables.
#       Either part alone: `device sp` or `device attn`. `attn` also checks the Hopper kernels (attention_sm90a.cu)
#       against float64 in a JVM of their own and, if they pass, times them beside w8 and w8_all in another.
#   bash .device-carry/run-on-device.sh device tests
#       on the device: every CUDA test of the gpu module, the batch-invariant kernels' in a JVM of their own. With the
#       carry's own runtime (SPS2_CARRY_JRE=1, 40 MB) this is the one call that checks the kernels when the job's
#       two-part class path cannot travel.
#   bash .device-carry/run-on-device.sh device probe
#       on the device: CudaInvarianceProbe, which GEMM and attention kernels give a row the same bits in any batch.
#   bash .device-carry/run-on-device.sh device model [stories,write,correct,prefill,decode,trained]
#       on the device: the whole model (ModelBench): stories260K greedy tokens CUDA vs CPU, a random
#       Llama-3.2-1B-shaped checkpoint written in /tmp, its logits and greedy tokens against transformers
#       (model_peer.py), end-to-end prefill/decode timings next to HF's and the floors; with `trained` (and by
#       default) also a copy trained to confident predictions by train_peer.py (why: see that script), checked
#       the same way. Logs go to $OUT.
set -euo pipefail
mode=${1:?usage: run-on-device.sh pack | device [quick|full] [filter]}

if [[ $mode == pack ]]; then
  repo=$(cd "$(dirname "$0")/../.." && pwd)
  main=${SPS2_DEVICE_REPO:-/work/main}
  carry=${SPS2_CARRY:-$main/.device-carry}
  m2=${M2_REPO:-$HOME/.m2/repository}
  cd "$repo"
  mvn -o -q -B -pl gpu -am package -DskipTests
  # ModelBench lives in bench/ (with the other benchmarks); it loads only gpu/ and model/ classes.
  mvn -o -q -B -pl operators,bench -am test-compile
  ls gpu/target/classes/sps2/gpu/cuda/ptx/*.ptx >/dev/null || { echo "no PTX built (nvcc missing?)"; exit 1; }
  mkdir -p "$carry/lib"
  rm -f "$carry"/lib/*.jar
  cp model/target/sps2-model-*.jar gpu/target/sps2-gpu-*.jar "$carry/lib/"
  jar cf "$carry/lib/sps2-gpu-tests.jar" -C gpu/target/test-classes .
  jar cf "$carry/lib/sps2-bench-model.jar" -C bench/target/classes sps2/gpu/cuda
  # The SP dry run: the operators classes it uses (csa, placement, sp: no Flink) and its main class.
  jar cf "$carry/lib/sps2-operators-sp.jar" -C operators/target/classes sps2/operators/csa -C operators/target/classes sps2/operators/placement \
    -C operators/target/classes sps2/operators/sp -C operators/target/test-classes sps2/operators/sp
  jackson=$m2/com/fasterxml/jackson/core
  cp "$m2/org/jcuda/jcuda/12.6.0/jcuda-12.6.0.jar" \
     "$m2/org/jcuda/jcuda-natives/12.6.0/jcuda-natives-12.6.0-linux-x86_64.jar" \
     "$m2/org/slf4j/slf4j-api/2.0.16/slf4j-api-2.0.16.jar" "$m2/org/slf4j/slf4j-simple/2.0.16/slf4j-simple-2.0.16.jar" \
     "$jackson/jackson-databind/2.19.2/jackson-databind-2.19.2.jar" "$jackson/jackson-core/2.19.2/jackson-core-2.19.2.jar" \
     "$jackson/jackson-annotations/2.19.2/jackson-annotations-2.19.2.jar" "$carry/lib/"
  shared=${SPS2_SHARED:-$repo/../shared}
  [[ -f $shared/models/stories260K.gguf ]] || shared=/work/shared
  cp "$shared/models/stories260K.gguf" "$carry/" || echo "stories260K.gguf not found: the device run skips the stories check"
  junit=$m2/org/junit/platform/junit-platform-console-standalone/1.11.4/junit-platform-console-standalone-1.11.4.jar
  [[ -f $junit ]] || mvn -q -B dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.11.4
  cp "$junit" "$carry/lib/"
  # SPS2_CARRY_JRE=0: no runtime in the carry (21 MB less); the device side then uses the one that
  # job-on-device.sh's part a unpacked on the same warm machine (a superset of these modules).
  if [[ ${SPS2_CARRY_JRE:-1} == 0 ]]; then
    rm -f "$carry/jre.tar.xz"
  elif [[ ! -f $carry/jre.tar.xz ]]; then
    tmp=$(mktemp -d)
    jlink --add-modules java.base,java.logging,java.management,java.xml,java.scripting,java.naming,jdk.unsupported,jdk.incubator.vector,jdk.management,jdk.zipfs \
      --strip-debug --no-header-files --no-man-pages --compress=2 --output "$tmp/jre"
    tar -C "$tmp" -cJf "$carry/jre.tar.xz" jre
    rm -rf "$tmp"
  fi
  cp scripts/gpu/run-on-device.sh scripts/gpu/torch_peer.py scripts/gpu/table.py scripts/gpu/model_peer.py scripts/gpu/train_peer.py "$carry/"
  du -sh "$carry"
  exit 0
fi

# ---- device side ----
here=$(cd "$(dirname "$0")" && pwd)
scope=${2:-full}
filter=${3:-}
out=${OUT:-/tmp/sps2-out}
mkdir -p "$out" /tmp/sps2
if [[ ! -f $here/jre.tar.xz && -x /tmp/sps2job/jre/bin/java ]]; then
  java=/tmp/sps2job/jre/bin/java  # the job's runtime (job-on-device.sh unpack, part a)
else
  [[ -x /tmp/sps2/jre/bin/java ]] || tar -C /tmp/sps2 -xJf "$here/jre.tar.xz"
  java=/tmp/sps2/jre/bin/java
fi
cp_=$(ls "$here"/lib/*.jar | grep -v console-standalone | tr '\n' ':')
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv || true
$java -version 2>&1 | head -1
junit() {  # $1: log name, $2: time limit in s; then the JUnit console's selectors and options ($junit_opts: JVM options)
  local log=$1 limit=$2
  shift 2
  # the launcher and the tests on the JVM's class path: threads outside JUnit's loader (a broker's common pool) see them
  timeout "$limit" $java ${junit_opts:-} --add-modules jdk.incubator.vector -cp "$cp_:$(ls "$here"/lib/junit-platform-console-standalone-*.jar)" \
    org.junit.platform.console.ConsoleLauncher execute "$@" --details=tree --disable-banner 2>&1 | tee "$out/$log.log"
}
gpu_tests() {  # every CUDA test of the gpu module; the batch-invariant kernels in a JVM of their own (a kernel that faults takes its context with it)
  local limit=${SPS2_TESTS_TIMEOUT:-300} shown="✘|tests (successful|failed|skipped)|Exception|expected"
  junit tests "$limit" --select-class sps2.gpu.cuda.CudaBackendTest --select-class sps2.gpu.cuda.CudaCpuParityTest \
    --select-class sps2.gpu.cuda.CudaSamplingTest --select-class sps2.gpu.cuda.CudaExchangeTest \
    --select-class sps2.gpu.cuda.CudaHandoffTest --select-class sps2.gpu.cuda.CudaFusedKernelsTest | grep -E "$shown" | head -40 || true
  junit tests-invariant "$limit" --select-class sps2.gpu.cuda.CudaBatchInvarianceTest | grep -E "$shown" | head -40 || true
}
if [[ $scope == tests ]]; then
  # the CUDA tests alone (when the Flink job's class path cannot travel): issue 17's check and issue 14's kernel-level one
  gpu_tests
  exit 0
fi
if [[ $scope == probe ]]; then
  # which kernels give a row the same bits whatever the other rows (CudaInvarianceProbe: a measurement, not a test)
  $java -Xmx16g --add-modules jdk.incubator.vector -cp "$cp_" sps2.gpu.cuda.CudaInvarianceProbe 2>&1 | grep -v "WARNING: Using incubator" \
    | tee "$out/probe.log"
  exit 0
fi
if [[ $scope == model ]]; then
  set +e
  work=/tmp/sps2-e2e
  stories=$here/stories260K.gguf
  [[ -f $stories ]] || stories=-
  # SPS2_PREFILL=<variant> (e.g. wg3p): the whole model with that prefill attention kernel (unset: the default, wg3
  # where the Hopper kernels load, w8_all elsewhere);
  # SPS2_PREFILLS=w8_all,wg3p: the prefill section once per variant, in one process
  # SPS2_INVARIANT=1: the batch-invariant kernels; SPS2_NO_PEER=1: our figures only (no transformers / torch run)
  bench() { $java -Xmx24g --add-modules jdk.incubator.vector -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
    ${SPS2_PREFILL:+-Dsps2.cuda.prefillVariant=$SPS2_PREFILL} -Dsps2.bench.prefillVariants=${SPS2_PREFILLS:-} \
    -Dsps2.bench.batchInvariant=$([[ -n ${SPS2_INVARIANT:-} ]] && echo true || echo false) -cp "$cp_" \
    sps2.gpu.cuda.ModelBench "$work" "$@" 2>&1 | grep -v "WARNING: Using incubator"; }
  if [[ -z $filter || $filter == *trained* ]]; then
    # the random checkpoint first, then train_peer.py gives a copy of it confident predictions (see that script)
    bench - write | tee "$out/ours_model.log"
    PYTHONUNBUFFERED=1 python3 "$here/train_peer.py" "$work" ${SPS2_TRAIN_STEPS:-300} 2>&1 | grep -vE "it/s\]|^\s*$" | tee "$out/train.log"
    bench "$stories" "${filter:-stories,correct,prefill,decode,trained}" | tee -a "$out/ours_model.log"
  else
    bench "$stories" "$filter" | tee "$out/ours_model.log"
  fi
  [[ -n ${SPS2_NO_PEER:-} ]] || OUT_TABLE=$out/model_table.txt PYTHONUNBUFFERED=1 python3 "$here/model_peer.py" "$work" "$out/ours_model.log" 2>&1 \
    | tee "$out/hf_model.log" | grep -vE "^HF\s|it/s\]|Loading|^\s*$"
  echo "=== summary"
  grep -hE "^CHECK|FAILED|^decode batch|^prefill [0-9]|^train_peer" "$out/ours_model.log" "$out/hf_model.log" "$out/train.log" 2>/dev/null
  [[ -f $out/model_table.txt ]] && cat "$out/model_table.txt"
  exit 0
fi
if [[ $scope == sp* || $scope == attn* ]]; then
  set +e
  # the SP dry run first (cheap), then the tests that every prefill variant must pass before its timing counts
  if [[ $scope == *sp* ]]; then
    timeout 240 $java -Xmx32g --add-modules jdk.incubator.vector -Dorg.slf4j.simpleLogger.defaultLogLevel=info -cp "$cp_" \
      sps2.operators.sp.GpuSpDryRun /tmp/sps2-sp "${filter:-8192,32768}" 2>&1 | grep -v "WARNING: Using incubator" | tee "$out/sp.log" | grep -v "^SP "
  fi
  # SPS2_NO_TESTS=1: skip the portable CUDA tests here (when the same call or the next one runs them through job-on-device.sh)
  [[ -n ${SPS2_NO_TESTS:-} ]] || gpu_tests
  if [[ $scope == *attn* ]]; then
    # the Hopper kernels (attention_sm90a.cu) in JVMs of their own: one that traps takes its device context with it
    junit_opts=-Dsps2.test.hopperAttention=true junit tests_hopper 300 \
      --select-method sps2.gpu.cuda.CudaBackendTest#everyHopperPrefillVariantMatchesFloat64 | grep -vE "^\s*$" | tail -8
    $java -Xmx16g -cp "$cp_" sps2.gpu.cuda.CudaBench full prefill 2>&1 | tee "$out/ours.tsv" | grep -vE "^(BENCH|CHECK|ROUNDS)"
    if grep -qE "\[ +1 tests successful" "$out/tests_hopper.log" && grep -qE "\[ +0 tests failed" "$out/tests_hopper.log"; then
      timeout 200 $java -Xmx16g -Dsps2.bench.hopperAttention=true -cp "$cp_" sps2.gpu.cuda.CudaBench full prefill 2>&1 \
        | grep -E "^(BENCH|CHECK|ROUNDS)" | grep -vE ":(w8|w8_all|default)\b" | tee "$out/ours_hopper.tsv" | grep -E "^(CHECK|ROUNDS)"
      cat "$out/ours_hopper.tsv" >> "$out/ours.tsv"
    fi
    PYTHONUNBUFFERED=1 python3 "$here/torch_peer.py" full prefill 2>&1 | tee "$out/torch.tsv" | grep -v "^TORCH"
    python3 "$here/table.py" "$out/ours.tsv" "$out/torch.tsv" > "$out/table.txt"
  fi
  [[ -f $out/tests.log ]] && echo "=== tests: $(grep -E "tests (successful|failed)" "$out/tests.log" | tr -s ' ' | tr '\n' ' ')"
  [[ -f $out/tests_hopper.log ]] && echo "=== Hopper attention tests: $(grep -E "tests (successful|failed)" "$out/tests_hopper.log" | tr -s ' ' | tr '\n' ' ')"
  [[ -f $out/tests_hopper.log ]] && grep -o "Hopper prefill variants that fail: .*" "$out/tests_hopper.log" | cut -c1-600
  [[ -f $out/tests.log ]] && grep -o "prefill variants that fail: .*" "$out/tests.log" | cut -c1-600
  [[ -f $out/tests.log ]] && grep -h "exchange read beside" "$out/tests.log" | head -3
  [[ -f $out/sp.log ]] && sed -n '/^SP dry run on ONE/,$p' "$out/sp.log"
  [[ -f $out/table.txt ]] && cat "$out/table.txt"
  exit 0
fi
[[ $scope == bench ]] || gpu_tests
set +e
$java -cp "$cp_" sps2.gpu.cuda.CudaBench "$scope" "$filter" 2>&1 | tee "$out/ours.tsv" | grep -v "^BENCH"
PYTHONUNBUFFERED=1 python3 "$here/torch_peer.py" "$scope" "$filter" 2>&1 | tee "$out/torch.tsv" | grep -v "^TORCH"
python3 "$here/table.py" "$out/ours.tsv" "$out/torch.tsv" | tee "$out/table.txt"
