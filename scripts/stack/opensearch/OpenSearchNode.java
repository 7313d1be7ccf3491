// Single-node OpenSearch for the local stack (scripts/stack/opensearch.sh), started from Maven Central jars
// instead of the distribution tarball: builds the settings, subclasses Node to hand it the bundled modules
// as classpath plugins (as the test framework's MockNode does), starts it and closes it on SIGTERM.
//
// Usage: java -cp CLASSES:JARS OpenSearchNode -Ekey=value ...   (path.home is required)
// No security manager, no bootstrap checks (those live in org.opensearch.bootstrap.Bootstrap, not in Node).

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LoggerContext;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.common.unit.TimeValue;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class OpenSearchNode {

    /** The modules a distribution loads from modules/ that the stack needs, loaded from the classpath instead. */
    static final List<Class<? extends Plugin>> PLUGINS =
        Arrays.asList(Netty4Plugin.class, CommonAnalysisPlugin.class, PainlessPlugin.class, ReindexPlugin.class);

    static final class StackNode extends Node {
        StackNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder b = Settings.builder()
            // defaults; every one can be overridden with -Ekey=value
            .put("cluster.name", "opensearch")
            .put("node.name", "node-1")
            .put("network.host", "127.0.0.1")
            .put("http.port", "9200")
            .put("transport.port", "9300")
            .put("discovery.type", "single-node")
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // a dev box's disk is often >90% full: never turn indices read-only or refuse to allocate
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            // one node: replicas could never be assigned, so new indices would stay yellow
            .put("cluster.default_number_of_replicas", 0);
        for (String a : args) {
            if (!a.startsWith("-E") || a.indexOf('=') < 0) {
                System.err.println("usage: OpenSearchNode -Ekey=value ...   (unexpected argument: " + a + ")");
                System.exit(64);
            }
            int eq = a.indexOf('=');
            b.put(a.substring(2, eq), a.substring(eq + 1));
        }
        Settings settings = b.build();
        if (settings.get("path.home") == null) {
            System.err.println("OpenSearchNode: -Epath.home=DIR is required");
            System.exit(64);
        }
        Path config = Path.of(settings.get("path.home"), "config");
        Files.createDirectories(config);

        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), config, () -> settings.get("node.name"));
        // reads config/log4j2.properties (written by the script) like the distribution does
        LogConfigurator.setNodeName(settings.get("node.name"));
        LogConfigurator.configure(env);

        Node node = new StackNode(env, PLUGINS);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                LogManager.getLogger(OpenSearchNode.class).info("stopping on signal");
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
                LoggerContext ctx = (LoggerContext) LogManager.getContext(false);
                ctx.stop();
            }
        }, "opensearch-shutdown"));

        try {
            node.start();
        } catch (Throwable t) {
            System.err.println("OpenSearchNode: start failed: " + t);
            t.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
        // cluster.default_number_of_replicas is read from the cluster state, not from the node's settings:
        // make the node-level value (default 0 here) the persistent cluster setting, so new indices are green.
        String replicas = settings.get("cluster.default_number_of_replicas");
        if (replicas != null) {
            try {
                node.client().admin().cluster().prepareUpdateSettings()
                    .setPersistentSettings(Settings.builder().put("cluster.default_number_of_replicas", replicas))
                    .get(TimeValue.timeValueSeconds(30));
            } catch (Exception e) {
                LogManager.getLogger(OpenSearchNode.class).warn("could not set cluster.default_number_of_replicas", e);
            }
        }
        LogManager.getLogger(OpenSearchNode.class).info("started; HTTP on {}:{}",
            settings.get("network.host"), settings.get("http.port"));
        stopped.await();   // keeps the JVM up; the shutdown hook ends it
    }
}
