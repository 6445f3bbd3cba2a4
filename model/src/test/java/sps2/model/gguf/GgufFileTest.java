package sps2.model.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sps2.model.DType;
import sps2.model.Half;
import sps2.model.HostTensor;
import sps2.model.ModelFormatException;

class GgufFileTest {

    @TempDir
    Path dir;

    static final float[] F32_VALUES = {1f, -2f, 3.5f, 0.25f, -1e-3f, 1e6f};
    static final float[] F16_VALUES = {1.5f, -2.25f, 0x1p-14f, 65504f};
    static final float[] BF16_VALUES = {1f, -3.5f, 256f, 0.125f, -0.0078125f, 3f};

    static byte[] f16(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putShort(Half.fromFloat(f));
        }
        return b.array();
    }

    static byte[] bf16(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putShort(HostTensor.toBf16(f));
        }
        return b.array();
    }

    /** Two Q8_0 blocks: scales 0.5 and -0.25, quants q[j] = j - 16. */
    static byte[] q8Blocks() {
        ByteBuffer b = ByteBuffer.allocate(2 * 34).order(ByteOrder.LITTLE_ENDIAN);
        for (float scale : new float[] {0.5f, -0.25f}) {
            b.putShort(Half.fromFloat(scale));
            for (int j = 0; j < 32; j++) {
                b.put((byte) (j - 16));
            }
        }
        return b.array();
    }

    static GgufWriter sample() {
        return new GgufWriter()
                .u8("t.u8", 200).i8("t.i8", -5).u16("t.u16", 60000).i16("t.i16", -300)
                .u32("t.u32", 4000000000L).i32("t.i32", -7).f32("t.f32", 0.5f).bool("t.bool", true)
                .str("t.str", "héllo ▁").u64("t.u64", 1L << 40).i64("t.i64", -9L).f64("t.f64", 0.1)
                .strings("t.strings", "a", "", "<0x0A>").floats("t.floats", 1f, -2f).ints("t.ints", 3, -4)
                .nestedSample("t.nested")
                .f32Tensor("a.f32", F32_VALUES, 2, 3)
                .tensor("b.f16", 1, f16(F16_VALUES), 4)
                .tensor("c.bf16", 30, bf16(BF16_VALUES), 3, 2)
                .tensor("d.q8", 8, q8Blocks(), 2, 32);
    }

    @Test
    void readsEveryMetadataTypeAndTensorType() throws IOException {
        GgufFile g = GgufFile.open(sample().write(dir.resolve("s.gguf")));
        assertEquals(3, g.version());
        assertEquals(200, g.getInt("t.u8"));
        assertEquals(-5, g.getInt("t.i8"));
        assertEquals(60000, g.getInt("t.u16"));
        assertEquals(-300, g.getInt("t.i16"));
        assertEquals(4000000000L, g.getLong("t.u32"));
        assertEquals(-7, g.getInt("t.i32"));
        assertEquals(0.5f, g.getFloat("t.f32"));
        assertTrue(g.getBoolean("t.bool", false));
        assertEquals("héllo ▁", g.getString("t.str"));
        assertEquals(1L << 40, g.getLong("t.u64"));
        assertEquals(-9L, g.getLong("t.i64"));
        assertEquals(0.1, (Double) g.metadata().get("t.f64"));
        assertArrayEquals(new String[] {"a", "", "<0x0A>"}, g.getStringArray("t.strings"));
        assertArrayEquals(new float[] {1f, -2f}, g.getFloatArray("t.floats"));
        assertArrayEquals(new int[] {3, -4}, g.getIntArray("t.ints"));
        Object[] nested = (Object[]) g.metadata().get("t.nested");
        assertArrayEquals(new int[] {1, 2}, (int[]) nested[0]);
        assertArrayEquals(new int[] {3}, (int[]) nested[1]);
        assertEquals(7, g.getInt("absent", 7));

        HostTensor a = g.tensor("a.f32");
        assertEquals(DType.F32, a.dtype());
        assertArrayEquals(new long[] {2, 3}, a.shape());
        assertArrayEquals(F32_VALUES, a.toFloats());
        HostTensor b = g.tensor("b.f16");
        assertEquals(DType.F16, b.dtype());
        assertArrayEquals(F16_VALUES, b.toFloats());
        HostTensor c = g.tensor("c.bf16", "renamed");
        assertEquals("renamed", c.name());
        assertEquals(DType.BF16, c.dtype());
        assertArrayEquals(new long[] {3, 2}, c.shape());
        assertArrayEquals(BF16_VALUES, c.toFloats());
        HostTensor d = g.tensor("d.q8");
        assertEquals(DType.Q8_0, d.dtype());
        assertArrayEquals(new long[] {2, 32}, d.shape());
        float[] q = d.toFloats();
        assertEquals(-8f, q[0]);
        assertEquals(7.5f, q[31]);
        assertEquals(4f, q[32]);
        assertEquals(-3.75f, q[63]);
    }

    @Test
    void honoursAlignmentAndVersion2() throws IOException {
        Path p = sample().version(2).alignment(64).write(dir.resolve("a.gguf"));
        GgufFile g = GgufFile.open(p);
        assertEquals(2, g.version());
        assertEquals(64, g.alignment());
        assertEquals(0, g.dataOffset() % 64);
        for (GgufFile.TensorInfo t : g.tensorInfos().values()) {
            assertEquals(0, t.offset() % 64, t.name());
        }
        assertArrayEquals(BF16_VALUES, g.tensor("c.bf16").toFloats());
        assertArrayEquals(new float[] {1f, -2f}, g.getFloatArray("t.floats"));
    }

    @Test
    void truncatedTensorDataIsNamed() throws IOException {
        byte[] full = sample().toBytes();
        Path p = Files.write(dir.resolve("t.gguf"), Arrays.copyOf(full, full.length - 10));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> GgufFile.open(p));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("d.q8"), e.getMessage());
    }

    @Test
    void truncatedHeaderIsReported() throws IOException {
        byte[] full = sample().toBytes();
        for (int cut : new int[] {6, 30, 100, 400}) {
            Path p = Files.write(dir.resolve("h" + cut + ".gguf"), Arrays.copyOf(full, cut));
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> GgufFile.open(p));
            assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        }
    }

    @Test
    void refusesBadMagicAndVersion1() throws IOException {
        byte[] bytes = sample().toBytes();
        bytes[0] = 'X';
        Path bad = Files.write(dir.resolve("bad.gguf"), bytes);
        assertTrue(assertThrows(ModelFormatException.class, () -> GgufFile.open(bad)).getMessage().contains("not a GGUF file"));
        Path v1 = sample().version(1).write(dir.resolve("v1.gguf"));
        assertTrue(assertThrows(ModelFormatException.class, () -> GgufFile.open(v1)).getMessage().contains("version 1"));
    }

    @Test
    void unsupportedTensorTypeIsNamedOnlyWhenUsed() throws IOException {
        Path p = new GgufWriter().str("general.architecture", "llama")
                .tensor("k.q4", 12, new byte[144], 256).f32Tensor("ok", new float[] {1f}, 1)
                .write(dir.resolve("q4.gguf"));
        GgufFile g = GgufFile.open(p);
        assertArrayEquals(new float[] {1f}, g.tensor("ok").toFloats());
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> g.tensor("k.q4"));
        assertTrue(e.getMessage().contains("Q4_K") && e.getMessage().contains("not supported"), e.getMessage());
        assertFalse(g.hasTensor("missing"));
    }
}
