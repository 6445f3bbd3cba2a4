package sps2.operators.io;

import java.util.List;

import sps2.schemas.GenerateRequest;

/** Sample requests for tests. */
final class Requests {

    private Requests() {
    }

    static GenerateRequest.Builder text(String id, String prompt) {
        return GenerateRequest.newBuilder()
                .setRequestId(id)
                .setPrompt(prompt)
                .setMaxTokens(16)
                .setTemperature(0.7f)
                .setTopP(0.9f)
                .setTopK(40)
                .setSeed(42L);
    }

    static GenerateRequest.Builder tokens(String id, List<Integer> ids) {
        return GenerateRequest.newBuilder().setRequestId(id).setPromptTokens(ids).setMaxTokens(8);
    }
}
