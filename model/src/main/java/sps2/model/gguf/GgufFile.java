package sps2.model.gguf;

import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import sps2.model.HostTensor;
import sps2.model.ModelFormatException;

/**
 * A GGUF file (versions 2 and 3): its metadata and tensor directory, read once when opened, and its
 * tensors memory-mapped one by one on request, so files beyond 2 GB work as long as each tensor is
 * below 2 GB.
 *
 * <pre>
 * "GGUF" | uint32 version | uint64 tensorCount | uint64 kvCount
 * kvCount x (string key | uint32 valueType | value)
 * tensorCount x (string name | uint32 nDims | nDims x uint64 dim (innermost first) | uint32 type | uint64 offset)
 * padding to general.alignment (default 32) | tensor data (offsets relative to here)
 * </pre>
 *
 * Metadata values are held as: Integer for (u)int8/16 and int32; Long for uint32 and (u)int64; Float,
 * Double, Boolean, String; arrays as int[], long[], float[], double[], boolean[], String[] by the same
 * rule, and Object[] for arrays of arrays.
 */
public final class GgufFile {

    public static final int MAGIC = 0x46554747; // "GGUF" read little-endian
    public static final int DEFAULT_ALIGNMENT = 32;

    /**
     * One entry of the tensor directory.
     *
     * @param shape    row-major shape (GGUF's dims reversed), e.g. [out, in] for a weight matrix
     * @param type     the element type, or null when {@code typeId} is unknown
     * @param offset   absolute file offset of the first byte
     * @param byteSize bytes of data, or -1 when the type is unknown
     */
    public record TensorInfo(String name, long[] shape, int typeId, GgmlType type, long offset, long byteSize) {
        public String typeName() {
            return type != null ? type.name() : "unknown type id " + typeId;
        }
    }

    private final Path path;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, TensorInfo> tensors;
    private final int alignment;
    private final long dataOffset;
    private final long fileSize;

    private GgufFile(Path path, int version, Map<String, Object> metadata, Map<String, TensorInfo> tensors, int alignment, long dataOffset, long fileSize) {
        this.path = path;
        this.version = version;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.alignment = alignment;
        this.dataOffset = dataOffset;
        this.fileSize = fileSize;
    }

    /** Reads the header and tensor directory; checks that every tensor lies inside the file. */
    public static GgufFile open(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            MappedByteBuffer head = ch.map(FileChannel.MapMode.READ_ONLY, 0, Math.min(size, Integer.MAX_VALUE));
            head.order(ByteOrder.LITTLE_ENDIAN);
            return parse(path, head, size);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException("The model file " + path + " does not exist.", e);
        } catch (IOException e) {
            throw new ModelFormatException("The model file " + path + " cannot be read: " + e.getMessage(), e);
        }
    }

    private static GgufFile parse(Path path, MappedByteBuffer b, long size) {
        Reader r = new Reader(path, b);
        if (size < 4 || b.getInt(0) != MAGIC) {
            throw new ModelFormatException("The file " + path + " is not a GGUF file: it does not start with the bytes \"GGUF\".");
        }
        r.skip(4);
        int version = r.i32();
        if (version == 1) {
            throw new ModelFormatException("The GGUF file " + path + " uses format version 1, which is obsolete and not supported; convert it to version 3.");
        }
        if (version != 2 && version != 3) {
            throw new ModelFormatException("The GGUF file " + path + " uses format version " + version + "; only versions 2 and 3 are supported.");
        }
        long tensorCount = r.count("tensor count", 8 + 4 + 4 + 8 + 8);
        long kvCount = r.count("metadata count", 8 + 4);

        Map<String, Object> metadata = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            String key = r.string();
            int type = r.i32();
            if (metadata.put(key, r.value(type, key)) != null) {
                throw new ModelFormatException("The GGUF file " + path + " is corrupt: it has the metadata key " + key + " twice.");
            }
        }
        int alignment = DEFAULT_ALIGNMENT;
        Object a = metadata.get("general.alignment");
        if (a != null) {
            long al = a instanceof Number n ? n.longValue() : -1;
            if (al <= 0 || al > (1 << 20) || Long.bitCount(al) != 1) {
                throw new ModelFormatException("The GGUF file " + path + " has an invalid general.alignment of " + a + " (a power of two is needed).");
            }
            alignment = (int) al;
        }

        Map<String, long[]> dims = new LinkedHashMap<>();
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        long[] rel = new long[(int) tensorCount];
        int idx = 0;
        String[] names = new String[(int) tensorCount];
        int[] types = new int[(int) tensorCount];
        for (long i = 0; i < tensorCount; i++, idx++) {
            String name = r.string();
            int nDims = r.i32();
            if (nDims < 1 || nDims > 4) {
                throw new ModelFormatException("The GGUF file " + path + " is corrupt: tensor " + name + " has " + nDims + " dimensions (1 to 4 expected).");
            }
            long[] shape = new long[nDims];
            for (int d = 0; d < nDims; d++) {
                long dim = r.i64();
                if (dim <= 0) {
                    throw new ModelFormatException("The GGUF file " + path + " is corrupt: tensor " + name + " has a dimension of " + dim + ".");
                }
                shape[nDims - 1 - d] = dim; // GGUF lists the innermost dimension first
            }
            names[idx] = name;
            dims.put(name, shape);
            types[idx] = r.i32();
            rel[idx] = r.i64();
        }
        long dataOffset = align(r.position(), alignment);
        for (int i = 0; i < names.length; i++) {
            long[] shape = dims.get(names[i]);
            GgmlType type = GgmlType.byId(types[i]);
            long bytes = type == null ? -1 : type.byteSize(HostTensor.elementCount(shape));
            long at = dataOffset + rel[i];
            if (rel[i] < 0 || (bytes >= 0 && at + bytes > size)) {
                throw new ModelFormatException("The GGUF file " + path + " is truncated: tensor " + names[i] + " needs " + Math.max(bytes, 0)
                        + " bytes at offset " + at + " but the file ends at " + size + ".");
            }
            if (tensors.put(names[i], new TensorInfo(names[i], shape, types[i], type, at, bytes)) != null) {
                throw new ModelFormatException("The GGUF file " + path + " is corrupt: it lists tensor " + names[i] + " twice.");
            }
        }
        return new GgufFile(path, version, metadata, tensors, alignment, dataOffset, size);
    }

    private static long align(long x, int alignment) {
        return (x + alignment - 1) / alignment * alignment;
    }

    public Path path() {
        return path;
    }

    public int version() {
        return version;
    }

    public int alignment() {
        return alignment;
    }

    /** Absolute offset of the tensor data section. */
    public long dataOffset() {
        return dataOffset;
    }

    public long fileSize() {
        return fileSize;
    }

    /** All metadata, in file order. */
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** The tensor directory, in file order. */
    public Map<String, TensorInfo> tensorInfos() {
        return tensors;
    }

    public boolean hasTensor(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor under its GGUF name. */
    public HostTensor tensor(String name) {
        return tensor(name, name);
    }

    /** The tensor stored as {@code name}, memory-mapped, and named {@code asName}. */
    public HostTensor tensor(String name, String asName) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new ModelFormatException("The GGUF file " + path + " has no tensor named " + name + ".");
        }
        if (info.type() == null || info.type().dtype() == null) {
            throw new ModelFormatException("The GGUF file " + path + " stores tensor " + name + " as " + info.typeName()
                    + ", which is not supported (F32, F16, BF16 and Q8_0 are).");
        }
        if (info.byteSize() < 0) {
            throw new ModelFormatException("The GGUF file " + path + " is corrupt: tensor " + name + " of shape " + Arrays.toString(info.shape())
                    + " is not a whole number of " + info.type().blockValues() + "-value " + info.type() + " blocks.");
        }
        if (info.byteSize() > Integer.MAX_VALUE) {
            throw new ModelFormatException("The tensor " + name + " in " + path + " takes " + info.byteSize() + " bytes, more than the 2 GB one mapping can hold.");
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            MappedByteBuffer data = ch.map(FileChannel.MapMode.READ_ONLY, info.offset(), info.byteSize());
            return new HostTensor(asName, info.type().dtype(), info.shape().clone(), data);
        } catch (IOException e) {
            throw new ModelFormatException("The tensor " + name + " of " + path + " cannot be mapped: " + e.getMessage(), e);
        }
    }

    // ---- metadata accessors ----

    public boolean has(String key) {
        return metadata.containsKey(key);
    }

    private Object require(String key) {
        Object v = metadata.get(key);
        if (v == null) {
            throw new ModelFormatException("The GGUF file " + path + " lacks the metadata key " + key + ".");
        }
        return v;
    }

    private ModelFormatException wrongType(String key, Object v, String wanted) {
        return new ModelFormatException("The GGUF file " + path + " has metadata " + key + " of type " + v.getClass().getSimpleName() + " where " + wanted + " is expected.");
    }

    public String getString(String key) {
        Object v = require(key);
        if (v instanceof String s) {
            return s;
        }
        throw wrongType(key, v, "a string");
    }

    public String getString(String key, String defaultValue) {
        return has(key) ? getString(key) : defaultValue;
    }

    public long getLong(String key) {
        Object v = require(key);
        if (v instanceof Integer || v instanceof Long) {
            return ((Number) v).longValue();
        }
        throw wrongType(key, v, "an integer");
    }

    public int getInt(String key) {
        long v = getLong(key);
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
            throw new ModelFormatException("The GGUF file " + path + " has metadata " + key + " = " + v + ", out of range.");
        }
        return (int) v;
    }

    public int getInt(String key, int defaultValue) {
        return has(key) ? getInt(key) : defaultValue;
    }

    public float getFloat(String key) {
        Object v = require(key);
        if (v instanceof Number n) {
            return n.floatValue();
        }
        throw wrongType(key, v, "a number");
    }

    public float getFloat(String key, float defaultValue) {
        return has(key) ? getFloat(key) : defaultValue;
    }

    public boolean getBoolean(String key, boolean defaultValue) {
        if (!has(key)) {
            return defaultValue;
        }
        Object v = require(key);
        if (v instanceof Boolean b) {
            return b;
        }
        throw wrongType(key, v, "a boolean");
    }

    public String[] getStringArray(String key) {
        Object v = require(key);
        if (v instanceof String[] a) {
            return a;
        }
        throw wrongType(key, v, "an array of strings");
    }

    public float[] getFloatArray(String key) {
        Object v = require(key);
        if (v instanceof float[] a) {
            return a;
        }
        throw wrongType(key, v, "an array of float32");
    }

    /** An integer array; uint32/int64 arrays are accepted when their values fit in an int. */
    public int[] getIntArray(String key) {
        Object v = require(key);
        if (v instanceof int[] a) {
            return a;
        }
        if (v instanceof long[] a) {
            int[] out = new int[a.length];
            for (int i = 0; i < a.length; i++) {
                if (a[i] < Integer.MIN_VALUE || a[i] > Integer.MAX_VALUE) {
                    throw new ModelFormatException("The GGUF file " + path + " has metadata " + key + " with value " + a[i] + ", out of range.");
                }
                out[i] = (int) a[i];
            }
            return out;
        }
        throw wrongType(key, v, "an array of integers");
    }

    /** Sequential little-endian reads over the mapped header that turn running out of bytes into a clear error. */
    private static final class Reader {
        private final Path path;
        private final MappedByteBuffer b;

        Reader(Path path, MappedByteBuffer b) {
            this.path = path;
            this.b = b;
        }

        long position() {
            return b.position();
        }

        private ModelFormatException truncated() {
            return new ModelFormatException("The GGUF file " + path + " is truncated: its header ends at byte " + b.position() + " before all metadata and tensor entries are read.");
        }

        private void need(long n) {
            if (n < 0 || n > b.remaining()) {
                throw truncated();
            }
        }

        void skip(int n) {
            need(n);
            b.position(b.position() + n);
        }

        int i32() {
            need(4);
            return b.getInt();
        }

        long i64() {
            need(8);
            return b.getLong();
        }

        /** A uint64 count, each element needing at least {@code minBytes}: rejects counts the file cannot hold. */
        long count(String what, int minBytes) {
            long n = i64();
            if (n < 0 || n > b.remaining() / Math.max(minBytes, 1) || n > Integer.MAX_VALUE - 8) {
                throw new ModelFormatException("The GGUF file " + path + " is corrupt or truncated: its " + what + " of " + Long.toUnsignedString(n)
                        + " does not fit in the " + b.remaining() + " bytes left.");
            }
            return n;
        }

        String string() {
            long n = i64();
            need(n);
            byte[] bytes = new byte[(int) n];
            b.get(bytes);
            return new String(bytes, StandardCharsets.UTF_8);
        }

        Object value(int type, String key) {
            try {
                return switch (type) {
                    case 0 -> b.get() & 0xff;
                    case 1 -> (int) b.get();
                    case 2 -> b.getShort() & 0xffff;
                    case 3 -> (int) b.getShort();
                    case 4 -> b.getInt() & 0xffffffffL;
                    case 5 -> b.getInt();
                    case 6 -> b.getFloat();
                    case 7 -> b.get() != 0;
                    case 8 -> string();
                    case 9 -> array(key);
                    case 10, 11 -> b.getLong();
                    case 12 -> b.getDouble();
                    default -> throw new ModelFormatException("The GGUF file " + path + " is corrupt: metadata " + key + " has unknown value type " + type + ".");
                };
            } catch (BufferUnderflowException e) {
                throw truncated();
            }
        }

        private Object array(String key) {
            int type = i32();
            int elem = switch (type) {
                case 0, 1, 7 -> 1;
                case 2, 3 -> 2;
                case 4, 5, 6 -> 4;
                case 8, 10, 11, 12 -> 8;
                case 9 -> 12;
                default -> throw new ModelFormatException("The GGUF file " + path + " is corrupt: array " + key + " has unknown element type " + type + ".");
            };
            int n = (int) count("array length for " + key, elem);
            switch (type) {
                case 0, 1, 2, 3, 5 -> {
                    int[] a = new int[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = ((Number) value(type, key)).intValue();
                    }
                    return a;
                }
                case 4, 10, 11 -> {
                    long[] a = new long[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = ((Number) value(type, key)).longValue();
                    }
                    return a;
                }
                case 6 -> {
                    float[] a = new float[n];
                    b.asFloatBuffer().get(a);
                    b.position(b.position() + 4 * n);
                    return a;
                }
                case 12 -> {
                    double[] a = new double[n];
                    b.asDoubleBuffer().get(a);
                    b.position(b.position() + 8 * n);
                    return a;
                }
                case 7 -> {
                    boolean[] a = new boolean[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = b.get() != 0;
                    }
                    return a;
                }
                case 8 -> {
                    String[] a = new String[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = string();
                    }
                    return a;
                }
                default -> {
                    Object[] a = new Object[n];
                    for (int i = 0; i < n; i++) {
                        a[i] = array(key);
                    }
                    return a;
                }
            }
        }
    }
}
