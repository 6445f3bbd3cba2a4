package sps2.operators.messages;

import static org.apache.flink.types.PojoTestUtils.assertSerializedAsPojoWithoutKryo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

class MessagesArePojosTest {

    @Test
    void everyMessageIsAFlinkPojoWithNoFieldLeftToKryo() {
        assertSerializedAsPojoWithoutKryo(Generation.class);
        assertSerializedAsPojoWithoutKryo(Admitted.class);
        assertSerializedAsPojoWithoutKryo(StepSeq.class);
        assertSerializedAsPojoWithoutKryo(ShardStep.class);
        assertSerializedAsPojoWithoutKryo(StepResult.class);
    }

    @Test
    void anAdmittedRequestKeepsItsGenerationThroughItsSerializer() throws Exception {
        Generation g = new Generation();
        g.maxTokens = 17;
        g.temperature = 0.7f;
        g.topK = 40;
        g.topP = 0.9f;
        g.minP = 0.05f;
        g.seed = -3;
        g.ignoreEos = true;
        g.stopTokens = new int[] {2, 9};
        g.stopStrings = new String[] {"The end", ""};
        Admitted a = new Admitted();
        a.requestId = "r";
        a.promptTokens = new int[] {1, 5};
        a.generation = g;
        TypeSerializer<Admitted> serializer = TypeInformation.of(Admitted.class).createSerializer(new SerializerConfigImpl());
        DataOutputSerializer bytes = new DataOutputSerializer(128);
        serializer.serialize(a, bytes);
        Admitted back = serializer.deserialize(new DataInputDeserializer(bytes.getCopyOfBuffer()));
        assertArrayEquals(a.promptTokens, back.promptTokens);
        assertEquals(g, back.generation);
        assertEquals(g.hashCode(), back.generation.hashCode());
        assertEquals(g.sampling(), back.generation.sampling());
        back.generation.stopStrings = new String[] {"The End", ""};
        assertNotEquals(g, back.generation, "stop strings are part of the generation");
    }
}
