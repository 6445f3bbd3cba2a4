package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;

/**
 * The CUDA test classes' common frame: one backend per test class on device 0, every test skipped with the
 * reason where there is no usable GPU (no driver, no device, or a jar built without nvcc), and fresh random
 * inputs in every run.
 */
abstract class CudaTestBase {
    static CudaBackend be;
    final Random rnd = new Random(System.nanoTime());

    @BeforeAll
    static void openBackend() {
        if (CudaBackend.isAvailable()) {
            be = new CudaBackend();
        }
    }

    @BeforeEach
    void needGpu() {
        assumeTrue(be != null, () -> "No CUDA GPU here, skipping: " + CudaBackend.unavailableReason());
    }

    @AfterAll
    static void closeBackend() {
        if (be != null) {
            be.close();
            be = null;
        }
    }
}
