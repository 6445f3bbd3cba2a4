package sps2.operators.messages;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

import sps2.gpu.WireType;

class StageMsgTest {

    /** Flink serializes stage messages as a POJO: typed payload bytes travel raw, with a few bytes of framing. */
    @Test
    void typedPayloadsCrossFlinkAsRawBytes() throws Exception {
        TypeInformation<StageMsg> info = TypeInformation.of(StageMsg.class);
        assertInstanceOf(PojoTypeInfo.class, info);
        TypeSerializer<StageMsg> ser = info.createSerializer(new SerializerConfigImpl());
        byte[] payload = new byte[20_000];
        new Random(3).nextBytes(payload);
        StageMsg m = new StageMsg();
        m.kind = StageMsg.KV;
        m.targetShard = 2;
        m.fromShard = 1;
        m.iteration = 77;
        m.layer = 5;
        m.requestId = "r1";
        m.headLens = new int[] {3, 3};
        m.maxLen = 3;
        m.payload = payload;
        m.payloadType = WireType.BF16.code();
        DataOutputSerializer out = new DataOutputSerializer(1 << 15);
        ser.serialize(m, out);
        assertTrue(out.length() < payload.length + 200, "a " + payload.length + "-byte payload took " + out.length() + " bytes");
        StageMsg back = ser.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
        assertArrayEquals(payload, back.payload);
        assertEquals(WireType.BF16, back.wireType());
        assertArrayEquals(m.headLens, back.headLens);
        assertEquals(payload.length, back.payloadBytes());
        assertEquals(0, StageMsg.own(0, 1, 2).payloadBytes());
    }
}
