package sps2.schemas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;

import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.specific.SpecificDatumReader;
import org.junit.jupiter.api.Test;

/** Records written by an older client (a schema with fewer fields) still read, with the new fields' defaults. */
class SchemaEvolutionTest {
    /** What a first-version client sent: id, prompt and max tokens only. */
    private static final Schema V1_REQUEST = new Schema.Parser().parse("""
            {"type": "record", "name": "GenerateRequest", "namespace": "sps2.schemas", "fields": [
              {"name": "requestId", "type": "string"},
              {"name": "prompt", "type": ["null", "string"], "default": null},
              {"name": "maxTokens", "type": "int"}
            ]}""");

    private static final Schema V1_TOKEN = new Schema.Parser().parse("""
            {"type": "record", "name": "TokenEvent", "namespace": "sps2.schemas", "fields": [
              {"name": "requestId", "type": "string"},
              {"name": "index", "type": "int"}
            ]}""");

    @Test
    void anOldRequestReadsWithTheCurrentSchema() throws IOException {
        GenericRecord old = new GenericData.Record(V1_REQUEST);
        old.put("requestId", "old-1");
        old.put("prompt", "Once upon a time");
        old.put("maxTokens", 7);
        GenerateRequest r = read(write(old, V1_REQUEST), V1_REQUEST, GenerateRequest.getClassSchema());
        assertEquals("old-1", r.getRequestId());
        assertEquals("Once upon a time", r.getPrompt());
        assertEquals(7, r.getMaxTokens());
        assertEquals(0f, r.getTemperature());
        assertEquals(1f, r.getTopP());
        assertNull(r.getPromptTokens());
        assertTrue(r.getStopStrings().isEmpty());
        assertFalse(r.getIgnoreEos());
    }

    @Test
    void everySchemaCanReadItsFirstVersion() {
        for (Schema[] pair : new Schema[][] {{V1_REQUEST, GenerateRequest.getClassSchema()}, {V1_TOKEN, TokenEvent.getClassSchema()}}) {
            SchemaCompatibility.SchemaPairCompatibility c = SchemaCompatibility.checkReaderWriterCompatibility(pair[1], pair[0]);
            assertEquals(SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE, c.getType(), c.getDescription());
        }
    }

    private static byte[] write(GenericRecord record, Schema schema) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder enc = EncoderFactory.get().binaryEncoder(out, null);
        new GenericDatumWriter<GenericRecord>(schema).write(record, enc);
        enc.flush();
        return out.toByteArray();
    }

    private static <T> T read(byte[] bytes, Schema writer, Schema reader) throws IOException {
        SpecificDatumReader<T> r = new SpecificDatumReader<>(writer, reader);
        return r.read(null, DecoderFactory.get().binaryDecoder(bytes, null));
    }
}
