package tracelake.profiles;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.expressions.Aggregator;

/**
 * The drift profile of one group of rows - every column's bins, nulls, moments or category
 * counts - in one pass over the rows, kept in flat arrays per task.
 *
 * <p>Why a JVM aggregator: in Spark SQL a histogram means one exploded record per (row, column)
 * through a hash aggregation, and the moments and categories each need a scan of their own; at
 * 10M rows that was ~2x the single-process NumPy bound. Here each row is read once and every
 * column is counted into arrays, as NumPy does.
 *
 * <p>Input row: the numeric columns first (doubles, null for a missing or non-finite value -
 * the caller's projection does what {@code profile_pandas} does), then the categorical columns
 * as text. The bins are {@code profiles._bins}' arithmetic exactly: {@code floor((x - lo) /
 * width) + 1}, {@code x >= hi} in the overflow bin, clipped to 0 .. bins + 1. The result is a
 * little-endian byte array decoded by {@code jvm_profiles.py}:
 * per numeric column nulls (i64), sum, squares about the centre, min, max (f64), then bins + 2
 * counts (i64); per categorical column nulls (i64), the number of distinct values (i32), then
 * each value's count (i64), UTF-8 length (i32) and bytes.
 */
public final class ProfileAggregator extends Aggregator<Row, ProfileAggregator.Buffer, byte[]> {
  private static final long serialVersionUID = 1L;

  /** One group's running profile; mutated in place (Spark's Aggregator allows it). */
  public static final class Buffer implements Serializable {
    private static final long serialVersionUID = 1L;
    long[] hist;
    long[] nulls;
    double[] sum;
    double[] sq;
    double[] min;
    double[] max;
    long[] categoryNulls;
    List<HashMap<String, long[]>> categories;
  }

  private final double[] lo;
  private final double[] hi;
  private final double[] width;
  private final double[] center;
  private final int[] bins;
  private final int[] offset;
  private final int histSize;
  private final int categorical;

  public ProfileAggregator(double[] lo, double[] hi, int[] bins, double[] center, int categorical) {
    if (lo.length != hi.length || lo.length != bins.length || lo.length != center.length) {
      throw new IllegalArgumentException("lo, hi, bins and center must have one entry per numeric column");
    }
    this.lo = lo.clone();
    this.hi = hi.clone();
    this.bins = bins.clone();
    this.center = center.clone();
    this.categorical = categorical;
    this.width = new double[lo.length];
    this.offset = new int[lo.length];
    int size = 0;
    for (int j = 0; j < lo.length; j++) {
      width[j] = (hi[j] - lo[j]) / bins[j];
      offset[j] = size;
      size += bins[j] + 2;
    }
    this.histSize = size;
  }

  @Override
  public Buffer zero() {
    int n = lo.length;
    Buffer b = new Buffer();
    b.hist = new long[histSize];
    b.nulls = new long[n];
    b.sum = new double[n];
    b.sq = new double[n];
    b.min = new double[n];
    b.max = new double[n];
    Arrays.fill(b.min, Double.POSITIVE_INFINITY);
    Arrays.fill(b.max, Double.NEGATIVE_INFINITY);
    b.categoryNulls = new long[categorical];
    b.categories = new ArrayList<>(categorical);
    for (int k = 0; k < categorical; k++) {
      b.categories.add(new HashMap<>());
    }
    return b;
  }

  @Override
  public Buffer reduce(Buffer b, Row row) {
    int n = lo.length;
    for (int j = 0; j < n; j++) {
      if (row.isNullAt(j)) {
        b.nulls[j]++;
        continue;
      }
      double x = row.getDouble(j);
      if (Double.isNaN(x) || Double.isInfinite(x)) {   // the projection nulls these; kept safe
        b.nulls[j]++;
        continue;
      }
      long bin;
      if (x >= hi[j]) {
        bin = bins[j] + 1;
      } else {
        bin = (long) Math.floor((x - lo[j]) / width[j]) + 1;
        bin = Math.max(0, Math.min(bins[j] + 1, bin));
      }
      b.hist[offset[j] + (int) bin]++;
      b.sum[j] += x;
      double d = x - center[j];
      b.sq[j] += d * d;
      if (x < b.min[j]) {
        b.min[j] = x;
      }
      if (x > b.max[j]) {
        b.max[j] = x;
      }
    }
    for (int k = 0; k < categorical; k++) {
      if (row.isNullAt(n + k)) {
        b.categoryNulls[k]++;
      } else {
        b.categories.get(k).computeIfAbsent(row.getString(n + k), key -> new long[1])[0]++;
      }
    }
    return b;
  }

  @Override
  public Buffer merge(Buffer a, Buffer b) {
    for (int i = 0; i < histSize; i++) {
      a.hist[i] += b.hist[i];
    }
    for (int j = 0; j < lo.length; j++) {
      a.nulls[j] += b.nulls[j];
      a.sum[j] += b.sum[j];
      a.sq[j] += b.sq[j];
      a.min[j] = Math.min(a.min[j], b.min[j]);
      a.max[j] = Math.max(a.max[j], b.max[j]);
    }
    for (int k = 0; k < categorical; k++) {
      a.categoryNulls[k] += b.categoryNulls[k];
      HashMap<String, long[]> into = a.categories.get(k);
      for (Map.Entry<String, long[]> e : b.categories.get(k).entrySet()) {
        into.computeIfAbsent(e.getKey(), key -> new long[1])[0] += e.getValue()[0];
      }
    }
    return a;
  }

  @Override
  public byte[] finish(Buffer b) {
    int n = lo.length;
    int size = 8 * (histSize + 5 * n);
    List<List<byte[]>> names = new ArrayList<>(categorical);
    for (int k = 0; k < categorical; k++) {
      List<byte[]> encoded = new ArrayList<>();
      for (String key : b.categories.get(k).keySet()) {
        byte[] utf8 = key.getBytes(StandardCharsets.UTF_8);
        encoded.add(utf8);
        size += 12 + utf8.length;
      }
      names.add(encoded);
      size += 12;
    }
    ByteBuffer out = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    for (int j = 0; j < n; j++) {
      out.putLong(b.nulls[j]).putDouble(b.sum[j]).putDouble(b.sq[j]).putDouble(b.min[j]).putDouble(b.max[j]);
      for (int i = 0; i <= bins[j] + 1; i++) {
        out.putLong(b.hist[offset[j] + i]);
      }
    }
    for (int k = 0; k < categorical; k++) {
      HashMap<String, long[]> counts = b.categories.get(k);
      out.putLong(b.categoryNulls[k]).putInt(counts.size());
      int i = 0;
      for (long[] count : counts.values()) {    // values() walks the map in keySet()'s order
        byte[] utf8 = names.get(k).get(i++);
        out.putLong(count[0]).putInt(utf8.length).put(utf8);
      }
    }
    return out.array();
  }

  @Override
  public Encoder<Buffer> bufferEncoder() {
    return Encoders.javaSerialization(Buffer.class);
  }

  @Override
  public Encoder<byte[]> outputEncoder() {
    return Encoders.BINARY();
  }
}
