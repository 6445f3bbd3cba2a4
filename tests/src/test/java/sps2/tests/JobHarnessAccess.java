package sps2.tests;

import java.nio.file.Path;

import sps2.schemas.GenerateRequest;

/** The shared model and the reference tokens, for tests in other packages. */
public final class JobHarnessAccess {
    private JobHarnessAccess() {
    }

    /** A model of the shared data folder; the test is skipped when the folder is not beside the checkout. */
    public static Path sharedModel(String name) {
        return JobHarness.sharedModel(name);
    }

    /** What single-process generation produces for a request. */
    public static int[] reference(Path model, GenerateRequest request) {
        return JobEndToEndTest.reference(model, request);
    }
}
