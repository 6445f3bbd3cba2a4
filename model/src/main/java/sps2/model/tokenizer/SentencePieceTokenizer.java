package sps2.model.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * SentencePiece-style BPE over a scored vocabulary, as llama2.c's {@code encode} does it: a dummy-prefix space
 * before non-empty text, one symbol per code point (or its UTF-8 bytes as {@code <0xNN>} tokens when the code
 * point is not in the vocabulary), then repeatedly merging the adjacent pair whose concatenation is the
 * highest-scoring piece (the leftmost on ties). A priority queue makes that O(n log n) instead of llama2.c's
 * O(n^2), which matters for long prompts; the result is the same.
 *
 * <p>When no piece holds a space after another character (true of SentencePiece vocabularies, whose pieces
 * are words with a leading space), no merge can cross the start of a word, so text is encoded word by word
 * and each word's ids are cached: long prompts repeat words. The cache is bounded and thread-safe.
 *
 * <p>Pieces are held with spaces as ' ' (GGUF's U+2581 is replaced when loading).
 */
public final class SentencePieceTokenizer implements Tokenizer {

    /** SentencePiece / GGUF token types. */
    public static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    private static final Pattern BYTE_PIECE = Pattern.compile("<0x([0-9A-Fa-f]{2})>");
    private static final Pattern SPACE_AFTER_CHARACTER = Pattern.compile("[^ ] ");
    private static final int WORD_CACHE_LIMIT = 1 << 16;

    private final String[] pieces;
    private final byte[][] pieceBytes;
    private final float[] scores;
    private final Map<String, Integer> mergeable;
    /** (left id << 32 | right id) → id of the concatenated piece, for every split of every mergeable piece. */
    private final Map<Long, Integer> merges;
    private final int[] byteTokens = new int[256];
    private final int bos;
    private final int eos;
    private final int unk;
    private final boolean addSpacePrefix;
    private final boolean wordwise;
    private final Map<String, int[]> wordCache = new ConcurrentHashMap<>();

    /**
     * @param pieces         token texts, spaces as ' ', byte tokens as "<0xNN>"
     * @param scores         merge priority per token (higher merges first)
     * @param types          SentencePiece token type per token, or null to infer: "<0xNN>" pieces are bytes,
     *                       {@code unk}, {@code bos} and {@code eos} are special, the rest normal
     * @param addSpacePrefix whether non-empty text gets a leading space (SentencePiece's dummy prefix)
     */
    public SentencePieceTokenizer(String[] pieces, float[] scores, int[] types, int bos, int eos, int unk, boolean addSpacePrefix) {
        if (scores.length != pieces.length || (types != null && types.length != pieces.length)) {
            throw new IllegalArgumentException("pieces, scores and types differ in length: " + pieces.length + ", " + scores.length
                    + ", " + (types == null ? "none" : types.length));
        }
        this.pieces = pieces.clone();
        this.scores = scores.clone();
        this.bos = bos;
        this.eos = eos;
        this.unk = unk;
        this.addSpacePrefix = addSpacePrefix;
        this.pieceBytes = new byte[pieces.length][];
        this.mergeable = new HashMap<>(pieces.length * 2);
        Arrays.fill(byteTokens, -1);
        for (int id = 0; id < pieces.length; id++) {
            int type = types != null ? types[id] : (id == unk ? UNKNOWN : id == bos || id == eos ? CONTROL : NORMAL);
            Matcher m = BYTE_PIECE.matcher(pieces[id]);
            boolean bytePiece = m.matches() && (type == BYTE || types == null);
            if (bytePiece) {
                int b = Integer.parseInt(m.group(1), 16);
                if (byteTokens[b] < 0) {
                    byteTokens[b] = id;
                }
                pieceBytes[id] = new byte[] {(byte) b};
            } else {
                pieceBytes[id] = pieces[id].getBytes(StandardCharsets.UTF_8);
                if (type == NORMAL || type == USER_DEFINED) {
                    mergeable.putIfAbsent(pieces[id], id);
                }
            }
        }
        this.wordwise = mergeable.keySet().stream().noneMatch(p -> SPACE_AFTER_CHARACTER.matcher(p).find());
        this.merges = new HashMap<>(mergeable.size() * 4);
        for (Map.Entry<String, Integer> e : mergeable.entrySet()) {
            String p = e.getKey();
            for (int k = 1; k < p.length(); k++) {
                Integer left = mergeable.get(p.substring(0, k));
                Integer right = left == null ? null : mergeable.get(p.substring(k));
                if (right != null) {
                    merges.put(key(left, right), e.getValue());
                }
            }
        }
    }

    private static long key(int left, int right) {
        return (long) left << 32 | (right & 0xffffffffL);
    }

    @Override
    public int vocabSize() {
        return pieces.length;
    }

    @Override
    public int bos() {
        return bos;
    }

    @Override
    public int eos() {
        return eos;
    }

    public int unk() {
        return unk;
    }

    /** The piece of a token as stored (spaces as ' '). */
    public String piece(int token) {
        return pieces[checked(token)];
    }

    public float score(int token) {
        return scores[checked(token)];
    }

    private int checked(int token) {
        if (token < 0 || token >= pieces.length) {
            throw new IllegalArgumentException("Token id " + token + " is outside the vocabulary of " + pieces.length + " tokens.");
        }
        return token;
    }

    @Override
    public byte[] decodeBytes(int prevToken, int token) {
        byte[] b = pieceBytes[checked(token)];
        if (prevToken == bos && b.length > 0 && b[0] == ' ' && pieces[token].startsWith(" ")) {
            return Arrays.copyOfRange(b, 1, b.length);
        }
        return b.clone();
    }

    @Override
    public int[] encode(String text, boolean withBos) {
        String s = addSpacePrefix && !text.isEmpty() ? " " + text : text;
        int[] out = new int[s.length() * 3 + 1];
        int n = 0;
        if (withBos) {
            out[n++] = bos;
        }
        if (!wordwise) {
            int[] ids = encodeChunk(s);
            System.arraycopy(ids, 0, out, n, ids.length);
            return Arrays.copyOf(out, n + ids.length);
        }
        int start = 0;
        for (int i = 1; i <= s.length(); i++) {
            if (i == s.length() || (s.charAt(i) == ' ' && s.charAt(i - 1) != ' ')) {
                String word = s.substring(start, i);
                int[] ids = wordCache.get(word);
                if (ids == null) {
                    ids = encodeChunk(word);
                    if (wordCache.size() >= WORD_CACHE_LIMIT) {
                        wordCache.clear();
                    }
                    wordCache.put(word, ids);
                }
                System.arraycopy(ids, 0, out, n, ids.length);
                n += ids.length;
                start = i;
            }
        }
        return Arrays.copyOf(out, n);
    }

    /** BPE over one stretch of text, without prefix or BOS. */
    private int[] encodeChunk(String s) {
        // One symbol per code point, or per byte where the code point is not a piece.
        int n = 0;
        int[] ids = new int[s.length() * 3 + 1];
        boolean[] fixed = new boolean[ids.length]; // byte-fallback symbols never merge
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            String ch = s.substring(i, i + Character.charCount(cp));
            i += ch.length();
            Integer id = mergeable.get(ch);
            if (id != null) {
                ids[n++] = id;
            } else {
                byte[] utf8 = ch.getBytes(StandardCharsets.UTF_8);
                boolean fallback = true;
                for (byte b : utf8) {
                    fallback &= byteTokens[b & 0xff] >= 0;
                }
                if (!fallback) {
                    utf8 = new byte[0]; // no byte tokens in this vocabulary: one unknown token for the character
                    ids[n] = unk;
                    fixed[n++] = true;
                }
                for (byte b : utf8) {
                    ids[n] = byteTokens[b & 0xff];
                    fixed[n++] = true;
                }
            }
        }
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        PriorityQueue<Pair> queue = new PriorityQueue<>();
        for (int i = 0; i + 1 < n; i++) {
            offer(queue, ids, fixed, i, i + 1);
        }
        boolean[] dead = new boolean[n];
        while (!queue.isEmpty()) {
            Pair p = queue.poll();
            if (dead[p.left] || dead[p.right] || next[p.left] != p.right || ids[p.left] != p.leftId || ids[p.right] != p.rightId) {
                continue; // stale: one side has merged since this pair was queued
            }
            ids[p.left] = p.merged;
            dead[p.right] = true;
            next[p.left] = next[p.right];
            if (next[p.right] >= 0) {
                prev[next[p.right]] = p.left;
                offer(queue, ids, fixed, p.left, next[p.left]);
            }
            if (prev[p.left] >= 0) {
                offer(queue, ids, fixed, prev[p.left], p.left);
            }
        }
        int[] out = new int[n];
        int k = 0;
        for (int i = n > 0 ? 0 : -1; i >= 0; i = next[i]) {
            out[k++] = ids[i];
        }
        return Arrays.copyOf(out, k);
    }

    private void offer(PriorityQueue<Pair> queue, int[] ids, boolean[] fixed, int left, int right) {
        if (fixed[left] || fixed[right]) {
            return;
        }
        Integer merged = merges.get(key(ids[left], ids[right]));
        if (merged != null) {
            queue.add(new Pair(scores[merged], left, right, ids[left], ids[right], merged));
        }
    }

    /** A candidate merge; best score first, then leftmost. */
    private record Pair(float score, int left, int right, int leftId, int rightId, int merged) implements Comparable<Pair> {
        @Override
        public int compareTo(Pair o) {
            int c = Float.compare(o.score, score);
            return c != 0 ? c : Integer.compare(left, o.left);
        }
    }
}
