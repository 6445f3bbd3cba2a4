package sps2.tests.deploy;

/**
 * Run in a JVM of its own with a set of JVM flags: exits 0 if both things Flink and sps2 need work, 3 if the
 * Vector API module is missing (sps2's CPU backend), 4 if java.util is not open to reflection (what Flink's
 * serializers and `flink run` need on Java 17).
 */
public final class JvmFlagsProbe {
    private JvmFlagsProbe() {
    }

    public static void main(String[] args) throws Exception {
        try {
            Class.forName("jdk.incubator.vector.FloatVector");
        } catch (ClassNotFoundException | NoClassDefFoundError e) {
            System.out.println("no Vector API: " + e);
            System.exit(3);
        }
        try {
            java.lang.reflect.Field elements = java.util.ArrayList.class.getDeclaredField("elementData");
            elements.setAccessible(true);
        } catch (RuntimeException e) {
            System.out.println("java.util closed: " + e);
            System.exit(4);
        }
        System.out.println("ok");
    }
}
