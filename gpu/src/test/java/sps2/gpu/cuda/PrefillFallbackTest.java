package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

import sps2.gpu.cuda.CudaAttention.PrefillKernel;

/**
 * Which prefill kernel stands in for a variant that cannot run (no GPU needed): a GQA-packed Hopper kernel falls back
 * to its unpacked twin of the same shape, every chain ends with the Hopper default and then the portable default, and
 * the defaults run any head layout.
 */
class PrefillFallbackTest {
    @Test
    void aPackedKernelFallsBackToItsUnpackedTwinThenTheDefaults() {
        List<PrefillKernel> packed = CudaAttention.HOPPER_PREFILLS.stream().filter(k -> k.pack() > 1).toList();
        assertFalse(packed.isEmpty(), "the Hopper kernels include GQA-packed forms");
        for (PrefillKernel k : packed) {
            List<String> chain = CudaAttention.fallbacks(k.variant());
            assertEquals(k.variant(), chain.get(0), "a variant is tried first itself");
            PrefillKernel twin = hopper(chain.get(1)).orElse(null);
            assertNotNull(twin, k.variant() + " falls back to " + chain.get(1) + ", which is not a Hopper kernel");
            assertEquals(1, twin.pack(), k.variant() + "'s twin packs no heads");
            assertEquals(k.warps(), twin.warps(), k.variant() + "'s twin has its consumer warpgroups");
            assertEquals(k.stages(), twin.stages(), k.variant() + "'s twin has its K/V slots");
            assertTrue(twin.suits(32, 32) && twin.suits(32, 8) && twin.suits(12, 4), "the twin runs any head layout");
        }
    }

    @Test
    void everyChainEndsWithTheHopperDefaultThenThePortableOne() {
        for (List<PrefillKernel> list : List.of(CudaAttention.PREFILLS, CudaAttention.HOPPER_PREFILLS)) {
            for (PrefillKernel k : list) {
                List<String> chain = CudaAttention.fallbacks(k.variant());
                assertEquals(List.of(CudaAttention.HOPPER_DEFAULT, CudaAttention.PORTABLE_DEFAULT), chain.subList(chain.size() - 2, chain.size()),
                        k.variant());
            }
        }
        assertTrue(hopper(CudaAttention.HOPPER_DEFAULT).map(k -> k.pack() == 1).orElse(false), "the Hopper default is an unpacked Hopper kernel");
        assertTrue(CudaAttention.PREFILLS.stream().anyMatch(k -> k.variant().equals(CudaAttention.PORTABLE_DEFAULT) && k.suits(32, 8)),
                "the portable default is a portable kernel for any heads");
        assertTrue(CudaAttention.hasPrefill(128, CudaAttention.PREFILLS.stream()
                .filter(k -> k.variant().equals(CudaAttention.PORTABLE_DEFAULT)).findFirst().orElseThrow()),
                "the portable default is built for head size 128 too");
    }

    private static Optional<PrefillKernel> hopper(String variant) {
        return CudaAttention.HOPPER_PREFILLS.stream().filter(k -> k.variant().equals(variant)).findFirst();
    }
}
