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
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The machine code the build carries beside the PTX (no GPU needed): every module has an sm_90 cubin, an ELF file for
 * CUDA (machine 190) built for SM 90, holding a code section for every entry point its PTX declares, so that an
 * H100/H200 that loads the cubin instead of compiling the PTX finds every kernel the backend asks for by name; and
 * every kernel name the Java side can ask for is an entry point of the PTX (a missing one fails the backend's
 * constructor on the GPU, where a session may not get to see it).
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

    @Test
    void everyKernelTheBackendCanAskForIsInThePtx() throws IOException {
        assumeTrue(CudaKernels.class.getResource(CudaKernels.ptxResource("ops")) != null,
                "This build carries no CUDA kernels (nvcc was not found when it was built)");
        Set<String> built = new HashSet<>();
        CudaKernels.moduleNames().forEach(m -> built.addAll(CudaKernels.kernelNames(m)));
        Set<String> asked = new TreeSet<>();
        Stream.of(GemmPlanner.GEMMS, GemmPlanner.INVARIANT_TILES, GemmPlanner.WGMMAS, GemmPlanner.WGMMA_OPTIONAL)
                .flatMap(List::stream).forEach(g -> asked.add(g.name()));
        for (int d : new int[] {8, 16, 32, 64, 128}) {
            for (List<CudaAttention.PrefillKernel> list : List.of(CudaAttention.PREFILLS, CudaAttention.INVARIANT, CudaAttention.HOPPER_PREFILLS)) {
                for (CudaAttention.PrefillKernel k : list) {
                    if (CudaAttention.hasPrefill(d, k)) {
                        asked.add(k.name(d));
                    }
                }
            }
            for (int g : new int[] {1, 2, 4, 8}) {
                asked.add("attn_rows_d" + d + "_g" + g);
            }
        }
        // every function the GEMM planner chooses over a spread of shapes, on Hopper and portable devices, fast and invariant
        for (GemmPlanner.Device dev : List.of(GemmPlanner.Device.portable(132), new GemmPlanner.Device(132, true, GemmPlanner.WGMMA_OPTIONAL))) {
            for (boolean invariant : new boolean[] {false, true}) {
                GemmPlanner planner = new GemmPlanner(dev.invariant(invariant));
                for (int m : new int[] {1, 2, 3, 5, 8, 9, 16, 33, 64, 65, 128, 200, 512, 4096}) {
                    for (int[] nk : new int[][] {{2048, 2048}, {512, 2048}, {8192, 2048}, {2048, 8192}, {128256, 2048}}) {
                        GemmPlanner.Plan plan = planner.plan(GemmPlanner.Product.of(m, nk[0], nk[1], true));
                        asked.add(plan.function());
                        if (plan.gz() > 1) {
                            asked.add("splitk_reduce");
                        }
                    }
                }
            }
        }
        for (int nb : new int[] {1, 2, 4, 8}) {
            asked.add("gemv_multi_" + nb);
        }
        for (int word : new int[] {2, 4, 8, 16}) {
            asked.add("exchange_gather" + word);
        }
        // the names launched as literals anywhere in the backend
        Pattern literal = Pattern.compile("launch\\(\"([A-Za-z0-9_]+)\",");
        try (Stream<Path> files = Files.list(Path.of("src/main/java/sps2/gpu/cuda"))) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                Matcher m = literal.matcher(Files.readString(f));
                while (m.find()) {
                    asked.add(m.group(1));
                }
            }
        }
        asked.removeAll(built);
        assertTrue(asked.isEmpty(), "Kernels the backend can ask for that no module builds: " + asked);
    }

    private static byte[] read(String resource) throws IOException {
        try (InputStream in = CudaKernels.class.getResourceAsStream(resource)) {
            return in == null ? null : in.readAllBytes();
        }
    }
}
