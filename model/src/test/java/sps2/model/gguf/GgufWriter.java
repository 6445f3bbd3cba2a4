package sps2.model.gguf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Writes small GGUF files for tests, following the published GGUF layout (not this module's reader). */
public final class GgufWriter {
    private final ByteArrayOutputStream kv = new ByteArrayOutputStream();
    private int kvCount;
    private final List<Object[]> tensors = new ArrayList<>(); // name, long[] ggufDims (innermost first), type id, byte[] data
    private int version = 3;
    private int alignment = 32;

    public GgufWriter version(int v) {
        this.version = v;
        return this;
    }

    public GgufWriter u8(String k, int v) { header(k, 0); kv.write(v); return this; }
    public GgufWriter i8(String k, int v) { header(k, 1); kv.write(v); return this; }
    public GgufWriter u16(String k, int v) { header(k, 2); le(2, v); return this; }
    public GgufWriter i16(String k, int v) { header(k, 3); le(2, v); return this; }
    public GgufWriter u32(String k, long v) { header(k, 4); le(4, v); return this; }
    public GgufWriter i32(String k, int v) { header(k, 5); le(4, v); return this; }
    public GgufWriter f32(String k, float v) { header(k, 6); le(4, Float.floatToRawIntBits(v)); return this; }
    public GgufWriter bool(String k, boolean v) { header(k, 7); kv.write(v ? 1 : 0); return this; }
    public GgufWriter str(String k, String v) { header(k, 8); string(v); return this; }
    public GgufWriter u64(String k, long v) { header(k, 10); le(8, v); return this; }
    public GgufWriter i64(String k, long v) { header(k, 11); le(8, v); return this; }
    public GgufWriter f64(String k, double v) { header(k, 12); le(8, Double.doubleToRawLongBits(v)); return this; }

    public GgufWriter alignment(int a) {
        this.alignment = a;
        return u32("general.alignment", a);
    }

    public GgufWriter strings(String k, String... v) {
        header(k, 9);
        le(4, 8);
        le(8, v.length);
        for (String s : v) {
            string(s);
        }
        return this;
    }

    public GgufWriter floats(String k, float... v) {
        header(k, 9);
        le(4, 6);
        le(8, v.length);
        for (float f : v) {
            le(4, Float.floatToRawIntBits(f));
        }
        return this;
    }

    public GgufWriter ints(String k, int... v) {
        header(k, 9);
        le(4, 5);
        le(8, v.length);
        for (int i : v) {
            le(4, i);
        }
        return this;
    }

    /** An array of two uint16 arrays: [[1, 2], [3]]. */
    public GgufWriter nestedSample(String k) {
        header(k, 9);
        le(4, 9);
        le(8, 2);
        le(4, 2); le(8, 2); le(2, 1); le(2, 2);
        le(4, 2); le(8, 1); le(2, 3);
        return this;
    }

    /** A tensor of row-major {@code shape}, raw data already encoded in its type. */
    public GgufWriter tensor(String name, int typeId, byte[] data, long... shape) {
        long[] dims = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            dims[i] = shape[shape.length - 1 - i];
        }
        tensors.add(new Object[] {name, dims, typeId, data});
        return this;
    }

    public GgufWriter f32Tensor(String name, float[] values, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        return tensor(name, 0, b.array(), shape);
    }

    public byte[] toBytes() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream saved = new ByteArrayOutputStream();
        // header
        writeLe(out, 4, 0x46554747);
        writeLe(out, 4, version);
        writeLe(out, 8, tensors.size());
        writeLe(out, 8, kvCount);
        out.writeBytes(kv.toByteArray());
        long offset = 0;
        List<Long> offsets = new ArrayList<>();
        for (Object[] t : tensors) {
            offsets.add(offset);
            offset = pad(offset + ((byte[]) t[3]).length);
        }
        for (int i = 0; i < tensors.size(); i++) {
            Object[] t = tensors.get(i);
            byte[] name = ((String) t[0]).getBytes(StandardCharsets.UTF_8);
            writeLe(out, 8, name.length);
            out.writeBytes(name);
            long[] dims = (long[]) t[1];
            writeLe(out, 4, dims.length);
            for (long d : dims) {
                writeLe(out, 8, d);
            }
            writeLe(out, 4, (int) t[2]);
            writeLe(out, 8, offsets.get(i));
        }
        while (out.size() % alignment != 0) {
            out.write(0);
        }
        for (Object[] t : tensors) {
            while (saved.size() % alignment != 0) {
                saved.write(0);
            }
            saved.writeBytes((byte[]) t[3]);
        }
        out.writeBytes(saved.toByteArray());
        return out.toByteArray();
    }

    public Path write(Path file) throws IOException {
        Files.write(file, toBytes());
        return file;
    }

    private long pad(long x) {
        return (x + alignment - 1) / alignment * alignment;
    }

    private void header(String key, int type) {
        kvCount++;
        string(key);
        le(4, type);
    }

    private void string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        le(8, b.length);
        kv.writeBytes(b);
    }

    private void le(int bytes, long v) {
        writeLe(kv, bytes, v);
    }

    private static void writeLe(ByteArrayOutputStream out, int bytes, long v) {
        for (int i = 0; i < bytes; i++) {
            out.write((int) (v >>> (8 * i)) & 0xff);
        }
    }
}
