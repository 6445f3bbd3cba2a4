package sps2.operators.messages;

/** A validated, tokenized request on its way to the scheduler. Flink POJO. */
public class Admitted {
    public String requestId;
    public int[] promptTokens;
    public int maxTokens;
    public float temperature;
    public int topK;
    public float topP;
    public float minP;
    public long seed;
    public boolean ignoreEos;
    public int[] stopTokens;
    public String[] stopStrings;
    public int priority;
    /** Wall clock (ms) when the job read the request. */
    public long admittedAtMs;

    public Admitted() {
    }
}
