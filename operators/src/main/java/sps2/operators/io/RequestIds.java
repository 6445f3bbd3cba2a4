package sps2.operators.io;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * What a request id may be, and the id under which the job's events about a request appear.
 *
 * <p>A valid id is 1 to {@link RecordLimits#MAX_REQUEST_ID_BYTES} bytes of UTF-8 and holds no control
 * characters; its events carry it unchanged. A request whose id is longer is rejected, and its rejection
 * carries {@link #eventId(String)}: the id's first {@code MAX_REQUEST_ID_BYTES} bytes, then its length and the
 * start of its SHA-256. That form is longer than any valid id, so it names no other request, and it is
 * bounded, so the event fits any Kafka record limit. A client that sent a long id finds its rejection under
 * {@code eventId(id)} (the client in this project tracks that id).
 */
public final class RequestIds {

    private static final HexFormat HEX = HexFormat.of();

    private RequestIds() {
    }

    /** Null if {@code id} is a valid request id, otherwise one sentence saying why not. */
    public static String problem(String id) {
        if (id == null || id.isBlank()) {
            return "The request id is empty (or only white space).";
        }
        int bytes = utf8Length(id);
        if (bytes > RecordLimits.MAX_REQUEST_ID_BYTES) {
            return "The request id is " + bytes + " bytes long; ids may have at most " + RecordLimits.MAX_REQUEST_ID_BYTES
                    + " bytes (UTF-8). This rejection carries the id's first bytes, its length and SHA-256 instead.";
        }
        for (int i = 0; i < id.length(); i++) {
            if (Character.isISOControl(id.charAt(i))) {
                return "The request id holds a control character (U+" + String.format("%04X", (int) id.charAt(i))
                        + ") at position " + i + ".";
            }
        }
        return null;
    }

    /**
     * The id the job's events about this request carry: {@code id} itself if it is at most
     * {@link RecordLimits#MAX_REQUEST_ID_BYTES} bytes (null becomes ""), otherwise its bounded form.
     */
    public static String eventId(String id) {
        if (id == null) {
            return "";
        }
        if (id.length() * 3L <= RecordLimits.MAX_REQUEST_ID_BYTES || utf8Length(id) <= RecordLimits.MAX_REQUEST_ID_BYTES) {
            return id;
        }
        byte[] all = id.getBytes(StandardCharsets.UTF_8);
        int cut = RecordLimits.MAX_REQUEST_ID_BYTES;
        while (cut > 0 && (all[cut] & 0xC0) == 0x80) {
            cut--; // all[cut] continues a character: end the prefix before that character
        }
        String prefix = new String(all, 0, cut, StandardCharsets.UTF_8);
        return prefix + "...[" + all.length + " bytes, sha256 " + HEX.formatHex(sha256(all), 0, 8) + "]";
    }

    /** Length of {@code text} in UTF-8 bytes (unpaired surrogates count as the one byte '?' they encode to). */
    public static int utf8Length(String text) {
        int bytes = 0;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c < 0x80) {
                bytes++;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < text.length() && Character.isLowSurrogate(text.charAt(i + 1))) {
                bytes += 4;
                i++;
            } else if (Character.isSurrogate(c)) {
                bytes++;
            } else {
                bytes += 3;
            }
        }
        return bytes;
    }

    static byte[] sha256(byte[] bytes) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(bytes);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("Every Java runtime has SHA-256.", e);
        }
    }
}
