package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;

import sps2.schemas.DeadLetter;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

class AvroCodecTest {

    @Test
    void requestRoundTripsInBothEncodings() throws IOException {
        GenerateRequest request = Requests.text("r1", "Once upon a time").setStopStrings(List.of("The end")).build();
        byte[] raw = AvroCodec.encode(request);
        byte[] single = AvroCodec.encodeSingleObject(request);

        assertFalse(AvroCodec.isSingleObject(raw));
        assertTrue(AvroCodec.isSingleObject(single));
        assertEquals(raw.length + 10, single.length, "single-object header is 2 marker bytes + 8 fingerprint bytes");
        assertEquals(request, AvroCodec.decodeRequest(raw));
        assertEquals(request, AvroCodec.decodeRequest(single));
    }

    @Test
    void tokenEventAndDeadLetterRoundTrip() throws IOException {
        TokenEvent event = TokenEvent.newBuilder().setRequestId("r2").setIndex(3).setTokenId(77).setText(" cat")
                .setFinished(true).setFinishReason(FinishReason.STOP).setFirstTokenMs(12.5).build();
        assertEquals(event, AvroCodec.decodeToken(AvroCodec.encode(event)));

        DeadLetter letter = DeadLetter.newBuilder().setTopic("t").setPartition(2).setOffset(99L)
                .setKey(ByteBuffer.wrap(new byte[] {1, 2})).setValue(null).setReason("bad").build();
        assertEquals(letter, AvroCodec.decodeDeadLetter(AvroCodec.encode(letter)));
    }

    @Test
    void trailingBytesAfterARawDatumAreRejected() throws IOException {
        byte[] raw = AvroCodec.encode(Requests.text("r3", "hi").build());
        byte[] longer = Arrays.copyOf(raw, raw.length + 1);
        IOException e = assertThrows(IOException.class, () -> AvroCodec.decodeRequest(longer));
        assertTrue(e.getMessage().contains("unread bytes"), e.getMessage());
        byte[] truncated = Arrays.copyOf(raw, raw.length - 1);
        assertThrows(IOException.class, () -> AvroCodec.decodeRequest(truncated));
    }

    @Test
    void singleObjectMarkerCannotStartARawRequest() {
        // A raw GenerateRequest starts with the zig-zag varint length of its id; C3 01 reads as -98.
        byte[] marker = {AvroCodec.SINGLE_OBJECT_MARKER_0, AvroCodec.SINGLE_OBJECT_MARKER_1};
        long varint = (marker[0] & 0x7F) | ((long) (marker[1] & 0x7F) << 7);
        long decoded = (varint >>> 1) ^ -(varint & 1);
        assertEquals(-98, decoded);
        assertArrayEquals(marker, Arrays.copyOf(AvroCodec.encodeSingleObject(Requests.text("x", "y").build()), 2));
    }
}
