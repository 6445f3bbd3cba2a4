package sps2.operators.io;

import java.lang.reflect.Type;
import java.util.Map;

import org.apache.flink.api.common.serialization.SerializerConfig;
import org.apache.flink.api.common.typeinfo.TypeInfoFactory;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;

/** Flink type information for {@link ParsedRequest}: an atomic type with {@link ParsedRequestSerializer}. */
public final class ParsedRequestTypeInfo extends TypeInformation<ParsedRequest> {

    private static final long serialVersionUID = 1L;

    public static final ParsedRequestTypeInfo INSTANCE = new ParsedRequestTypeInfo();

    /** Found by Flink's type extraction through the {@code @TypeInfo} annotation on {@link ParsedRequest}. */
    public static final class Factory extends TypeInfoFactory<ParsedRequest> {
        @Override
        public TypeInformation<ParsedRequest> createTypeInfo(Type type, Map<String, TypeInformation<?>> genericParameters) {
            return INSTANCE;
        }
    }

    @Override
    public boolean isBasicType() {
        return false;
    }

    @Override
    public boolean isTupleType() {
        return false;
    }

    @Override
    public int getArity() {
        return 1;
    }

    @Override
    public int getTotalFields() {
        return 1;
    }

    @Override
    public Class<ParsedRequest> getTypeClass() {
        return ParsedRequest.class;
    }

    @Override
    public boolean isKeyType() {
        return false;
    }

    @Override
    public TypeSerializer<ParsedRequest> createSerializer(SerializerConfig config) {
        return ParsedRequestSerializer.INSTANCE;
    }

    @Override
    public String toString() {
        return "ParsedRequest";
    }

    @Override
    public boolean equals(Object obj) {
        return obj instanceof ParsedRequestTypeInfo;
    }

    @Override
    public int hashCode() {
        return ParsedRequestTypeInfo.class.hashCode();
    }

    @Override
    public boolean canEqual(Object obj) {
        return obj instanceof ParsedRequestTypeInfo;
    }
}
