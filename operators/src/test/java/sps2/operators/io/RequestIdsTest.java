package sps2.operators.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

class RequestIdsTest {

    @Test
    void validIdsAreTheirOwnEventIds() {
        String id = "req-ü-" + "x".repeat(RecordLimits.MAX_REQUEST_ID_BYTES - 7);
        assertEquals(RecordLimits.MAX_REQUEST_ID_BYTES, id.getBytes(StandardCharsets.UTF_8).length);
        assertNull(RequestIds.problem(id));
        assertSame(id, RequestIds.eventId(id));
        assertEquals("", RequestIds.eventId(null));
    }

    @Test
    void anOverLongIdGetsABoundedEventIdThatNoValidIdHas() {
        for (String unit : new String[] {"x", "é", "中", "😀"}) {
            String id = unit.repeat(600_000 / unit.length());
            String eventId = RequestIds.eventId(id);
            int bytes = eventId.getBytes(StandardCharsets.UTF_8).length;
            assertTrue(bytes > RecordLimits.MAX_REQUEST_ID_BYTES, unit + ": " + bytes + " bytes, so no valid id equals it");
            assertTrue(bytes < RecordLimits.MAX_REQUEST_ID_BYTES + 80, unit + ": bounded, " + bytes + " bytes");
            assertNotNull(RequestIds.problem(eventId), "the event id itself is not a valid id");
            assertTrue(eventId.startsWith(unit.repeat(10)), "it starts with the id's own first characters");
            assertTrue(eventId.contains(id.getBytes(StandardCharsets.UTF_8).length + " bytes"), eventId);
            assertEquals(eventId, RequestIds.eventId(id), "deterministic, so a client can compute it");
            assertTrue(eventId.indexOf('\uFFFD') < 0, unit + ": the prefix ends on a whole character");
        }
        String a = "y".repeat(1000) + "a";
        String b = "y".repeat(1000) + "b";
        assertNotEquals(RequestIds.eventId(a), RequestIds.eventId(b), "ids that differ after the prefix stay apart");
    }

    @Test
    void utf8LengthMatchesTheEncoder() {
        for (String s : new String[] {"", "abc", "é", "中文", "😀x", "\uD800", "a\uDC00b"}) {
            assertEquals(s.getBytes(StandardCharsets.UTF_8).length, RequestIds.utf8Length(s), s);
        }
    }
}
