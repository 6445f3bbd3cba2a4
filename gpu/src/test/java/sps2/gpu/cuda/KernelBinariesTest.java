package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The machine code the build carries beside the PTX (no GPU needed): every module has an sm_90 cubin, an ELF file for
 * CUDA (machine 190) built for SM 90, holding a code section for every entry point its PTX declares, so that an
 * H100/H200 that loads the cubin instead of compiling the PTX finds every kernel the backend asks for by name.
 */
class KernelBinariesTest {
    private static final int EM_CUDA = 190;

    @Test
    void everyModuleCarriesSm90MachineCodeForEveryKernelOfItsPtx() throws IOException {
        assumeTrue(CudaKernels.class.getResource(CudaKernels.ptxResource("ops")) != null,
                "This build carries no CUDA kernels (nvcc was not found when it was built)");
        List<String> missing = new ArrayList<>();
        for (String module : CudaKernels.moduleNames()) {
            byte[] cubin = read(CudaKernels.cubinResource(module));
            assertNotNull(cubin, "The build carries PTX but no cubin for module " + module);
            assertArrayEquals(new byte[] {0x7f, 'E', 'L', 'F', 2}, java.util.Arrays.copyOf(cubin, 5), module + ".cubin is not a 64-bit ELF file");
            ByteBuffer elf = ByteBuffer.wrap(cubin).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(EM_CUDA, elf.getShort(18) & 0xffff, module + ".cubin is not CUDA machine code");
            assertEquals(90, (elf.getInt(48) >> 8) & 0xff, module + ".cubin is not built for SM 90");
            String text = new String(cubin, StandardCharsets.ISO_8859_1);
            List<String> kernels = CudaKernels.kernelNames(module);
            assertTrue(kernels.size() > 0, "The PTX of module " + module + " declares no kernel");
            for (String k : kernels) {
                if (!text.contains(".text." + k + "\0")) {
                    missing.add(module + ":" + k);
                }
            }
        }
        assertTrue(missing.isEmpty(), "Kernels in the PTX without machine code in the cubin: " + missing);
    }

    private static byte[] read(String resource) throws IOException {
        try (InputStream in = CudaKernels.class.getResourceAsStream(resource)) {
            return in == null ? null : in.readAllBytes();
        }
    }
}
