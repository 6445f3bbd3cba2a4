package sps2.job.cli;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;
import sps2.operators.JobSettings;
import sps2.operators.csa.CsaPolicy;

/**
 * Command-line values of the job's typed settings, checked where they are typed: a misspelt mode or sparse-attention
 * policy is a one-line usage error (exit 2), never a job that fails when its operators open.
 */
public final class SettingConverters {
    private SettingConverters() {
    }

    private static <T> T convert(java.util.function.Function<String, T> parse, String value) {
        try {
            return parse.apply(value);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }

    public static final class Mode implements ITypeConverter<JobSettings.Mode> {
        @Override
        public JobSettings.Mode convert(String value) {
            return SettingConverters.convert(JobSettings.Mode::parse, value);
        }
    }

    public static final class Backend implements ITypeConverter<JobSettings.BackendKind> {
        @Override
        public JobSettings.BackendKind convert(String value) {
            return SettingConverters.convert(JobSettings.BackendKind::parse, value);
        }
    }

    public static final class Kernels implements ITypeConverter<JobSettings.Kernels> {
        @Override
        public JobSettings.Kernels convert(String value) {
            return SettingConverters.convert(JobSettings.Kernels::parse, value);
        }
    }

    public static final class Append implements ITypeConverter<JobSettings.AppendPolicy> {
        @Override
        public JobSettings.AppendPolicy convert(String value) {
            return SettingConverters.convert(JobSettings.AppendPolicy::parse, value);
        }
    }

    public static final class Recovery implements ITypeConverter<JobSettings.KvRecovery> {
        @Override
        public JobSettings.KvRecovery convert(String value) {
            return SettingConverters.convert(JobSettings.KvRecovery::parse, value);
        }
    }

    public static final class Csa implements ITypeConverter<CsaPolicy> {
        @Override
        public CsaPolicy convert(String value) {
            return SettingConverters.convert(CsaPolicy::parse, value);
        }
    }
}
