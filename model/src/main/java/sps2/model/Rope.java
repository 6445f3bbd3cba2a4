package sps2.model;

/** Rotary position embedding frequencies, with Llama-3 scaling when the config asks for it. */
public final class Rope {
    private Rope() {
    }

    /** invFreq[j] = theta^(-2j/headSize), j < headSize/2, scaled as Llama 3.1 does for long contexts. */
    public static float[] inverseFrequencies(ModelConfig config) {
        int half = config.headSize() / 2;
        float[] inv = new float[half];
        ModelConfig.RopeScaling s = config.ropeScaling();
        for (int j = 0; j < half; j++) {
            double f = 1.0 / Math.pow(config.ropeTheta(), (2.0 * j) / config.headSize());
            if (s != null) {
                double lowWavelen = s.originalContextLength() / s.lowFreqFactor();
                double highWavelen = s.originalContextLength() / s.highFreqFactor();
                double wavelen = 2 * Math.PI / f;
                if (wavelen > lowWavelen) {
                    f = f / s.factor();
                } else if (wavelen >= highWavelen) {
                    double smooth = (s.originalContextLength() / wavelen - s.lowFreqFactor()) / (s.highFreqFactor() - s.lowFreqFactor());
                    f = (1 - smooth) * f / s.factor() + smooth * f;
                }
            }
            inv[j] = (float) f;
        }
        return inv;
    }
}
