// A JDBC client, as BI tools (Metabase, Power BI's connectors, DBeaver) reach sicoop_etl with
// Debian's libpostgresql-jdbc-java: run the pipeline with autocommit on and off (the driver
// then wraps the CALL in a transaction), read an analysts' view, and read the column
// descriptions through DatabaseMetaData. Prints TAP. Usage: java ClientJdbc.java <jdbc url> <user>
import java.sql.*;

public class ClientJdbc {
    static int tests = 0, failed = 0;

    static void ok(boolean cond, String what) {
        tests++;
        if (!cond) failed++;
        System.out.println((cond ? "ok " : "not ok ") + tests + " - " + what);
    }

    static String lastRun(Connection c) throws SQLException {
        try (Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT string_agg(status, ',' ORDER BY started_at) FROM sicoop.run_log"
                                          + " WHERE run_id = (SELECT max(run_id) FROM sicoop.run_log)")) {
            r.next();
            return r.getString(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String all = "succeeded,succeeded,succeeded,succeeded,succeeded,succeeded";
        try (Connection c = DriverManager.getConnection(args[0], args[1], "")) {
            c.setAutoCommit(true);
            try (Statement s = c.createStatement()) {
                s.execute("SET sicoop.as_of = '2025-08-15'");
                s.execute("CALL sicoop.run_pipeline()");
            }
            ok(all.equals(lastRun(c)), "JDBC, autocommit on: CALL sicoop.run_pipeline() succeeds (" + lastRun(c) + ")");

            // Autocommit off: the driver sends BEGIN first; the steps share that transaction
            // (a procedure committing inside it would fail), and the caller commits.
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.execute("SET sicoop.as_of = '2025-08-16'");
                s.execute("CALL sicoop.run_pipeline()");
            }
            c.commit();
            ok(all.equals(lastRun(c)), "JDBC, autocommit off: the CALL runs in the driver's transaction and commits with it");
            c.setAutoCommit(true);

            try (Statement s = c.createStatement();
                 ResultSet r = s.executeQuery("SELECT sum(movimentacoes), sum(valor_total) FROM sicoop.vw_gasto_tipo_conta_agencia")) {
                r.next();
                ok(r.getLong(1) == 12, "JDBC: reads spend by account type and agency (" + r.getLong(1) + " movements, "
                                       + r.getBigDecimal(2) + ")");
            }

            DatabaseMetaData md = c.getMetaData();
            String remarks = null;
            int described = 0, columns = 0;
            try (ResultSet r = md.getColumns(null, "sicoop", "dim_cartao", null)) {
                while (r.next()) {
                    columns++;
                    if (r.getString("REMARKS") != null) described++;
                    if ("numero_cartao".equals(r.getString("COLUMN_NAME"))) remarks = r.getString("REMARKS");
                }
            }
            ok(columns > 0 && described == columns && remarks != null && remarks.startsWith("Número do cartão mascarado"),
               "JDBC DatabaseMetaData: every column of dim_cartao has its description (numero_cartao: " + remarks + ")");
            try (ResultSet r = md.getTables(null, "sicoop", "vw_gasto_%", new String[] {"VIEW"})) {
                int views = 0;
                boolean described_views = true;
                while (r.next()) {
                    views++;
                    described_views &= r.getString("REMARKS") != null;
                }
                ok(views == 4 && described_views, "JDBC DatabaseMetaData: the analysts' spend views are listed, described");
            }
        }
        System.out.println("1.." + tests);
        System.exit(failed == 0 ? 0 : 1);
    }
}
