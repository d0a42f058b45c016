package tracelake.profiles;

import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/** Registers a {@link ProfileAggregator} for one profile spec as a session SQL function. */
public final class ProfileFunctions {
  private ProfileFunctions() {
  }

  /**
   * Registers {@code name(v0, .., v{n-1}, k0, .., k{m-1})} in the session's function registry:
   * n numeric columns (doubles) with their bounds, bins and centres, then m categorical columns
   * (text). Returns the name, so Python can call it with {@code functions.call_function}.
   */
  public static String register(SparkSession spark, String name, double[] lo, double[] hi, int[] bins,
                                double[] center, int categorical) {
    StructField[] fields = new StructField[lo.length + categorical];
    for (int j = 0; j < lo.length; j++) {
      fields[j] = DataTypes.createStructField("v" + j, DataTypes.DoubleType, true);
    }
    for (int k = 0; k < categorical; k++) {
      fields[lo.length + k] = DataTypes.createStructField("k" + k, DataTypes.StringType, true);
    }
    ProfileAggregator aggregator = new ProfileAggregator(lo, hi, bins, center, categorical);
    spark.udf().register(name, functions.udaf(aggregator, Encoders.row(new StructType(fields))));
    return name;
  }
}
