#!/usr/bin/env bash
# sps2's CPU backend against llama.cpp on the same random stories15M weights, paired: every round runs each
# contender once (sps2: bench-cpu's warm-up, then the median of 3 timed passes; llama.cpp: llama-bench's warm-up
# run, then 3 timed runs, their mean), rounds interleave them, and the table gives medians over the rounds. On a
# shared 2-core machine single runs swing by 2x; medians of interleaved rounds much less.
#
#   scripts/bench-cpu-peers.sh LLAMA_BIN_DIR [ROUNDS]
#
# LLAMA_BIN_DIR holds llama-bench and llama-convert-llama2c-to-ggml from a llama.cpp you built yourself (this
# script downloads nothing). The weights: `sps2 make-model --shape stories15m --format llama2c`, converted by
# llama.cpp's own tool with the Llama 2 vocabulary of ../shared/models. Figures: prefill of 200 tokens from an
# empty context (llama-bench pp200), decode of 50 tokens after those 200 (tg50 at depth 200), and the wall
# time of a whole process that generates one token of stories260K (sps2 generate, llama.cpp's llama-simple).
# LLAMA_BIN_DIR also needs llama-simple.
# Environment: SPS2 (launcher, default ./sps2), SPS2_BEFORE (a second launcher, e.g. an older build, paired as
# "before"; builds before bench-cpu reported medians report the best of 3), THREADS (default "1 2"), OUT (folder
# for the model and the raw log, default a temporary one), QUIET_LOAD (wait for a load average below it before
# each round: other people's builds on the same 2 cores halve any figure).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:?usage: $0 LLAMA_BIN_DIR [ROUNDS]}"
ROUNDS="${2:-5}"
SPS2="${SPS2:-$ROOT/sps2}"
THREADS="${THREADS:-1 2}"
OUT="${OUT:-$(mktemp -d)}"
VOCAB="$ROOT/../shared/models/llama2_tokenizer.bin"
[[ -x "$BIN/llama-bench" && -x "$BIN/llama-convert-llama2c-to-ggml" ]] || { echo "no llama-bench / llama-convert-llama2c-to-ggml in $BIN" >&2; exit 2; }
[[ -f "$VOCAB" ]] || { echo "the Llama 2 vocabulary $VOCAB is missing (../shared beside the checkout)" >&2; exit 2; }

mkdir -p "$OUT"
if [[ ! -f "$OUT/stories15m.gguf" ]]; then
  "$SPS2" make-model --shape stories15m --format llama2c --out "$OUT" >&2
  "$BIN/llama-convert-llama2c-to-ggml" --copy-vocab-from-model "$VOCAB" --llama2c-model "$OUT/model.bin" \
      --llama2c-output-model "$OUT/stories15m.gguf" > "$OUT/convert.log" 2>&1
fi
LOG="$OUT/rounds.tsv"
: > "$LOG"

# sps2 bench-cpu prints "stories15m (random)  params  prefill  decode  heap": fields 4 and 5 of its last line
sps2_round() { # launcher threads round name
  local line
  line=$("$1" bench-cpu --shape stories15m --threads "$2" --repeats 3 2>/dev/null | tail -1)
  printf '%s\t%s\t%s\tprefill\t%s\n%s\t%s\t%s\tdecode\t%s\n' "$3" "$4" "$2" "$(awk '{print $4}' <<<"$line")" \
      "$3" "$4" "$2" "$(awk '{print $5}' <<<"$line")" >> "$LOG"
}
llama_round() { # threads round
  local pp tg
  pp=$("$BIN/llama-bench" -m "$OUT/stories15m.gguf" -p 200 -n 0 -t "$1" -r 3 -o csv 2>/dev/null | tail -1 | awk -F'","' '{print $(NF-1)}')
  tg=$("$BIN/llama-bench" -m "$OUT/stories15m.gguf" -p 0 -n 50 -d 200 -t "$1" -r 3 -o csv 2>/dev/null | tail -1 | awk -F'","' '{print $(NF-1)}')
  printf '%s\tllama.cpp\t%s\tprefill\t%s\n%s\tllama.cpp\t%s\tdecode\t%s\n' "$2" "$1" "$pp" "$2" "$1" "$tg" >> "$LOG"
}

# Whole-process time of a one-token generate on stories260K (the pretrained GGUF of ../shared), sps2 against
# llama.cpp's llama-simple; each command once untimed first (sps2's first run after a build writes its
# class-data archive).
GGUF="$ROOT/../shared/models/stories260K.gguf"
ms() { local s e; s=$(date +%s%N); "$@" > /dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
start_round() { # launcher round name
  printf '%s\t%s\t-\tstart\t%s\n' "$2" "$3" "$(ms "$1" generate --model "$GGUF" --prompt "Once upon a time" --max-tokens 1 --temperature 0)" >> "$LOG"
}
"$SPS2" generate --model "$GGUF" --prompt "Once upon a time" --max-tokens 1 > /dev/null 2>&1
[[ -n "${SPS2_BEFORE:-}" ]] && "$SPS2_BEFORE" generate --model "$GGUF" --prompt "Once upon a time" --max-tokens 1 > /dev/null 2>&1
"$BIN/llama-simple" -m "$GGUF" -n 1 "Once upon a time" > /dev/null 2>&1 || true

# QUIET_LOAD: before each round, wait (up to 10 minutes) until the 1-minute load average is below it
quiet() {
  [[ -n "${QUIET_LOAD:-}" ]] || return 0
  for ((w = 0; w < 120; w++)); do
    awk -v q="$QUIET_LOAD" '{ exit !($1 < q) }' /proc/loadavg && return 0
    sleep 5
  done
  echo "the load stayed above $QUIET_LOAD; running this round anyway" >&2
}

for ((r = 1; r <= ROUNDS; r++)); do
  quiet
  echo "round $r starts at load $(cut -d' ' -f1 /proc/loadavg)" >&2
  start_round "$SPS2" "$r" sps2
  printf '%s\tllama.cpp\t-\tstart\t%s\n' "$r" "$(ms "$BIN/llama-simple" -m "$GGUF" -n 1 "Once upon a time")" >> "$LOG"
  [[ -n "${SPS2_BEFORE:-}" ]] && start_round "$SPS2_BEFORE" "$r" before
  for t in $THREADS; do
    sps2_round "$SPS2" "$t" "$r" sps2
    llama_round "$t" "$r"
    if [[ -n "${SPS2_BEFORE:-}" ]]; then
      sps2_round "$SPS2_BEFORE" "$t" "$r" before
    fi
  done
  echo "round $r of $ROUNDS done" >&2
done

echo "stories15M (random weights) tokens/s and a one-token generate of stories260K (whole process, ms);"
echo "medians of $ROUNDS interleaved rounds on $(nproc) cores; raw rounds in $LOG"
awk -F'\t' -v before="${SPS2_BEFORE:+1}" -v threads="$THREADS" '
  { v[$2 FS $3 FS $4] = v[$2 FS $3 FS $4] " " $5 }
  function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    printf "%-8s %-8s %10s %10s %12s%s\n", "threads", "phase", "sps2", "llama.cpp", "sps2/llama", before ? sprintf(" %10s", "before") : ""
    nt = split(threads, T, " ")
    for (i = 1; i <= nt; i++) for (p = 1; p <= 2; p++) {
      t = T[i]
      phase = p == 1 ? "prefill" : "decode"
      s = median(v["sps2" FS t FS phase]); l = median(v["llama.cpp" FS t FS phase])
      printf "%-8s %-8s %10.0f %10.0f %12.2f%s\n", t, phase, s, l, s / l, before ? sprintf(" %10.0f", median(v["before" FS t FS phase])) : ""
    }
    s = median(v["sps2" FS "-" FS "start"]); l = median(v["llama.cpp" FS "-" FS "start"])
    printf "%-8s %-8s %10.0f %10.0f %12.2f%s   (ms, lower is better)\n", "-", "1 token", s, l, s / l, before ? sprintf(" %10.0f", median(v["before" FS "-" FS "start"])) : ""
  }' "$LOG"
