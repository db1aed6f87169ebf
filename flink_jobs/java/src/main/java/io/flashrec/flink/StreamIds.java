package io.flashrec.flink;

/** Redis stream entry ids ("ms-seq"), compared numerically. */
final class StreamIds {
    private StreamIds() {}

    static long[] parse(String id) {
        int dash = id.indexOf('-');
        try {
            if (dash < 0) {
                return new long[] {Long.parseUnsignedLong(id), 0L};
            }
            return new long[] {
                Long.parseUnsignedLong(id.substring(0, dash)),
                Long.parseUnsignedLong(id.substring(dash + 1))
            };
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a stream id: " + id, e);
        }
    }

    static int compare(String a, String b) {
        long[] x = parse(a);
        long[] y = parse(b);
        int c = Long.compareUnsigned(x[0], y[0]);
        return c != 0 ? c : Long.compareUnsigned(x[1], y[1]);
    }
}
