package sps2.operators.messages;

/** A validated, tokenized request on its way to the scheduler. Flink POJO. */
public class Admitted {
    public String requestId;
    public int[] promptTokens;
    /** How the request is to be generated: limit, sampling and stop conditions. */
    public Generation generation;
    public int priority;
    /** Wall clock (ms) when the job read the request. */
    public long admittedAtMs;

    public Admitted() {
    }
}
