package sps2.operators.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.MissingSchemaException;
import org.apache.avro.specific.SpecificDatumReader;
import org.apache.avro.specific.SpecificDatumWriter;
import org.apache.avro.specific.SpecificRecord;

import sps2.schemas.DeadLetter;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Encoding of the records that travel over Kafka.
 *
 * <p>Wire format: every topic value is a <b>raw Avro binary datum</b> written with the current
 * schema of its class (no header). The requests topic additionally accepts Avro's <b>single-object
 * encoding</b> (marker {@code C3 01}, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
 * schema, then the datum): a client built against an older or newer version of
 * {@code GenerateRequest} writes single objects, and the job resolves them to the current schema
 * as long as it knows the writer schema (see {@link RequestReader}).
 *
 * <p>The two are told apart by the first two bytes without ambiguity: a raw {@code GenerateRequest}
 * starts with the length of its request id as a zig-zag varint, and {@code C3 01} reads as the
 * length -98, which no valid datum has.
 *
 * <p>Decoding is strict and cheap to reject: before a value is materialised, a skipping pass walks
 * it against the writer schema, so every declared string length and array count must be backed by
 * bytes that are there (Avro would otherwise allocate a declared 1 GiB string for a 14-byte value
 * before failing), and bytes left over after the datum are an error.
 *
 * <p>All methods are thread-safe: readers and writers are shared, encoders and decoders are made
 * per call.
 */
public final class AvroCodec {

    /** The two marker bytes that open an Avro single-object encoded message. */
    public static final byte SINGLE_OBJECT_MARKER_0 = (byte) 0xC3;
    public static final byte SINGLE_OBJECT_MARKER_1 = (byte) 0x01;
    /** Marker plus fingerprint. */
    public static final int SINGLE_OBJECT_HEADER_BYTES = 10;

    private static final SpecificDatumWriter<GenerateRequest> REQUEST_WRITER = new SpecificDatumWriter<>(GenerateRequest.class);
    private static final SpecificDatumWriter<TokenEvent> TOKEN_WRITER = new SpecificDatumWriter<>(TokenEvent.class);
    private static final SpecificDatumWriter<DeadLetter> DEAD_LETTER_WRITER = new SpecificDatumWriter<>(DeadLetter.class);
    private static final SpecificDatumReader<TokenEvent> TOKEN_READER = new SpecificDatumReader<>(TokenEvent.class);
    private static final SpecificDatumReader<DeadLetter> DEAD_LETTER_READER = new SpecificDatumReader<>(DeadLetter.class);
    private static final RequestReader REQUEST_READER = new RequestReader(List.of());

    private AvroCodec() {
    }

    public static byte[] encode(GenerateRequest request) {
        return encodeRaw(request, REQUEST_WRITER);
    }

    public static byte[] encode(TokenEvent event) {
        return encodeRaw(event, TOKEN_WRITER);
    }

    public static byte[] encode(DeadLetter deadLetter) {
        return encodeRaw(deadLetter, DEAD_LETTER_WRITER);
    }

    /** Encodes a request in Avro's single-object encoding (header with the schema fingerprint). */
    public static byte[] encodeSingleObject(GenerateRequest request) {
        try {
            return GenerateRequest.getEncoder().encode(request).array();
        } catch (IOException e) {
            throw new UncheckedIOException("Encoding request " + request.getRequestId() + " as an Avro single object failed.", e);
        }
    }

    /** Whether the bytes open with the single-object marker {@code C3 01}. */
    public static boolean isSingleObject(byte[] bytes) {
        return bytes.length >= 2 && bytes[0] == SINGLE_OBJECT_MARKER_0 && bytes[1] == SINGLE_OBJECT_MARKER_1;
    }

    /**
     * Decodes a request in either encoding; single objects must have been written with the current
     * schema (use a {@link RequestReader} to accept others).
     */
    public static GenerateRequest decodeRequest(byte[] bytes) throws IOException {
        return REQUEST_READER.read(bytes);
    }

    public static TokenEvent decodeToken(byte[] bytes) throws IOException {
        return decodeStrict(bytes, 0, TokenEvent.getClassSchema(), TOKEN_READER);
    }

    public static DeadLetter decodeDeadLetter(byte[] bytes) throws IOException {
        return decodeStrict(bytes, 0, DeadLetter.getClassSchema(), DEAD_LETTER_READER);
    }

    /**
     * Reads requests in both encodings; single objects may be written with the current schema or
     * any of the writer schemas given (older or newer versions of {@code GenerateRequest}), whose
     * data Avro's schema resolution maps onto the current schema. Thread-safe.
     */
    public static final class RequestReader {

        private final SpecificDatumReader<GenerateRequest> rawReader = new SpecificDatumReader<>(GenerateRequest.class);
        /** Writer schema fingerprint → (writer schema, reader resolving it to the current schema). */
        private final Map<Long, WriterReader> byFingerprint = new HashMap<>();

        private record WriterReader(Schema writer, SpecificDatumReader<GenerateRequest> reader) {
        }

        public RequestReader(Collection<Schema> writerSchemas) {
            Schema current = GenerateRequest.getClassSchema();
            byFingerprint.put(SchemaNormalization.parsingFingerprint64(current), new WriterReader(current, rawReader));
            for (Schema writer : writerSchemas) {
                byFingerprint.putIfAbsent(SchemaNormalization.parsingFingerprint64(writer),
                        new WriterReader(writer, new SpecificDatumReader<>(writer, current)));
            }
        }

        /**
         * The request id at the start of {@code bytes} without reading the rest (for a value too large to
         * parse), or null when the value does not open with a readable id: it must be a raw datum, or a single
         * object of a known writer schema whose first field is the string {@code requestId}, and the id's
         * declared length must be backed by bytes. Invalid UTF-8 becomes U+FFFD, as Avro decodes it.
         */
        public String peekRequestId(byte[] bytes) {
            Schema writer = GenerateRequest.getClassSchema();
            int offset = 0;
            if (isSingleObject(bytes)) {
                if (bytes.length < SINGLE_OBJECT_HEADER_BYTES) {
                    return null;
                }
                WriterReader writerReader = byFingerprint.get(fingerprint(bytes));
                if (writerReader == null) {
                    return null;
                }
                writer = writerReader.writer();
                offset = SINGLE_OBJECT_HEADER_BYTES;
            }
            Schema.Field first = writer.getFields().isEmpty() ? null : writer.getFields().get(0);
            if (first == null || !first.name().equals("requestId") || first.schema().getType() != Schema.Type.STRING) {
                return null;
            }
            // The id's length: a zig-zag varint of at most 10 bytes, as Avro writes a long.
            long raw = 0;
            int at = offset;
            for (int shift = 0; ; shift += 7) {
                if (at >= bytes.length || shift > 63) {
                    return null;
                }
                int b = bytes[at++] & 0xFF;
                raw |= (long) (b & 0x7F) << shift;
                if ((b & 0x80) == 0) {
                    break;
                }
            }
            long length = (raw >>> 1) ^ -(raw & 1);
            if (length < 0 || length > bytes.length - at) {
                return null;
            }
            return new String(bytes, at, (int) length, java.nio.charset.StandardCharsets.UTF_8);
        }

        /**
         * Decodes one value; throws {@link MissingSchemaException} for a single object of an
         * unknown writer schema and another exception for anything unreadable.
         */
        public GenerateRequest read(byte[] bytes) throws IOException {
            if (!isSingleObject(bytes)) {
                return decodeStrict(bytes, 0, GenerateRequest.getClassSchema(), rawReader);
            }
            if (bytes.length < SINGLE_OBJECT_HEADER_BYTES) {
                throw new IOException("The single-object header is cut short at " + bytes.length + " bytes.");
            }
            long fingerprint = fingerprint(bytes);
            WriterReader writerReader = byFingerprint.get(fingerprint);
            if (writerReader == null) {
                throw new MissingSchemaException("writer schema fingerprint " + Long.toHexString(fingerprint));
            }
            return decodeStrict(bytes, SINGLE_OBJECT_HEADER_BYTES, writerReader.writer(), writerReader.reader());
        }
    }

    /** The little-endian writer schema fingerprint of a single-object header. */
    private static long fingerprint(byte[] bytes) {
        long fingerprint = 0;
        for (int i = SINGLE_OBJECT_HEADER_BYTES - 1; i >= 2; i--) {
            fingerprint = (fingerprint << 8) | (bytes[i] & 0xFFL);
        }
        return fingerprint;
    }

    private static <T extends SpecificRecord> byte[] encodeRaw(T record, SpecificDatumWriter<T> writer) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(128);
        BinaryEncoder encoder = EncoderFactory.get().directBinaryEncoder(out, null);
        try {
            writer.write(record, encoder);
            encoder.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("Encoding a " + record.getSchema().getName() + " failed.", e);
        }
        return out.toByteArray();
    }

    /** Validates {@code bytes[offset..]} as exactly one datum of {@code writer}, then reads it. */
    private static <T> T decodeStrict(byte[] bytes, int offset, Schema writer, SpecificDatumReader<T> reader) throws IOException {
        int length = bytes.length - offset;
        BinaryDecoder check = DecoderFactory.get().binaryDecoder(bytes, offset, length, null);
        GenericDatumReader.skip(writer, check);
        if (!check.isEnd()) {
            throw new IOException("The " + writer.getName() + " datum is followed by unread bytes (" + bytes.length
                    + " bytes in all).");
        }
        return reader.read(null, DecoderFactory.get().binaryDecoder(bytes, offset, length, null));
    }
}
