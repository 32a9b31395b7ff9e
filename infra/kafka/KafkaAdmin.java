// A small Kafka admin tool for the infra/engines scripts, run as a single-file Java program
// (Java >= 17 compiles it in memory) against the cached Kafka jars, so one JVM does what the
// stock tools need one JVM per call for:
//
//   java -cp '<kafka>/libs/*' infra/kafka/KafkaAdmin.java ready BROKER TIMEOUT_S [PID]
//       Waits until BROKER answers metadata requests (cluster description with at least one
//       broker, and a topic listing). Exit 0 when it does, 1 after TIMEOUT_S seconds or, given
//       PID (the broker's process), as soon as that process is gone.
//   java -cp '<kafka>/libs/*' infra/kafka/KafkaAdmin.java create-topics BROKER PARTITIONS TOPIC...
//       Creates each TOPIC with PARTITIONS partitions and replication factor 1 unless it exists
//       (idempotent), then checks that every TOPIC is listed. Prints one line per topic:
//       "created TOPIC (N partitions)" or "exists TOPIC (N partitions)".
//   java -cp '<kafka>/libs/*' infra/kafka/KafkaAdmin.java list BROKER
//       Prints the non-internal topics, one per line, as "TOPIC N" (N = partition count).
//
// Exit status: 0 ok, 1 failure (message on stderr), 2 usage error.

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class KafkaAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) usage();
        String command = args[0];
        String broker = args[1];
        switch (command) {
            case "ready" -> {
                if (args.length != 3 && args.length != 4) usage();
                Long pid = args.length == 4 ? Long.valueOf(args[3]) : null;
                System.exit(ready(broker, Long.parseLong(args[2]), pid) ? 0 : 1);
            }
            case "create-topics" -> {
                if (args.length < 4) usage();
                int partitions = Integer.parseInt(args[2]);
                List<String> topics = List.of(args).subList(3, args.length);
                createTopics(broker, partitions, topics);
            }
            case "list" -> {
                if (args.length != 2) usage();
                try (Admin admin = admin(broker, 10_000)) {
                    describe(admin, new ArrayList<>(admin.listTopics().names().get(30, TimeUnit.SECONDS)))
                        .forEach((topic, partitions) -> System.out.println(topic + " " + partitions));
                }
            }
            default -> usage();
        }
    }

    static void usage() {
        System.err.println("usage: KafkaAdmin ready BROKER TIMEOUT_S [PID] | create-topics BROKER PARTITIONS TOPIC... | list BROKER");
        System.exit(2);
    }

    static Admin admin(String broker, int requestTimeoutMs) {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "autorma-infra");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, requestTimeoutMs);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Math.max(requestTimeoutMs, 30_000));
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, 100);
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
        props.put(AdminClientConfig.RETRY_BACKOFF_MS_CONFIG, 100);
        props.put(AdminClientConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 500);
        return Admin.create(props);
    }

    /** True once the broker lists itself in the cluster metadata and answers a topic listing. */
    static boolean ready(String broker, long timeoutS, Long pid) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
        String last = "no answer";
        try (Admin admin = admin(broker, 2_000)) {
            while (System.nanoTime() < deadline) {
                if (pid != null && !ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                    System.err.println("KafkaAdmin: broker process " + pid + " is gone");
                    return false;
                }
                try {
                    int nodes = admin.describeCluster().nodes().get(3, TimeUnit.SECONDS).size();
                    admin.listTopics().names().get(3, TimeUnit.SECONDS);
                    if (nodes > 0) return true;
                    last = "metadata lists no broker yet";
                } catch (ExecutionException e) {
                    last = String.valueOf(e.getCause());
                } catch (java.util.concurrent.TimeoutException e) {
                    last = "metadata request timed out";
                }
                Thread.sleep(200);
            }
        }
        System.err.println("KafkaAdmin: " + broker + " not ready after " + timeoutS + " s: " + last);
        return false;
    }

    static void createTopics(String broker, int partitions, List<String> topics) throws Exception {
        try (Admin admin = admin(broker, 10_000)) {
            List<NewTopic> wanted = new ArrayList<>();
            for (String topic : topics) wanted.add(new NewTopic(topic, partitions, (short) 1));
            Map<String, org.apache.kafka.common.KafkaFuture<Void>> results = admin.createTopics(wanted).values();
            List<String> created = new ArrayList<>();
            List<String> failed = new ArrayList<>();
            for (String topic : topics) {
                try {
                    results.get(topic).get(30, TimeUnit.SECONDS);
                    created.add(topic);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) failed.add(topic + ": " + e.getCause());
                }
            }
            if (!failed.isEmpty()) {
                failed.forEach(f -> System.err.println("KafkaAdmin: could not create " + f));
                System.exit(1);
            }
            // Read the topics back: they exist now, whoever created them.
            Map<String, Integer> described = describe(admin, topics);
            for (String topic : topics) {
                int n = described.get(topic);
                System.out.println((created.contains(topic) ? "created " : "exists ") + topic + " (" + n + " partitions)");
                if (!created.contains(topic) && n != partitions) {
                    System.err.println("KafkaAdmin: warning: " + topic + " already exists with " + n
                        + " partitions, not " + partitions + "; left as it is");
                }
            }
        }
    }

    static Map<String, Integer> describe(Admin admin, List<String> topics) throws Exception {
        Map<String, TopicDescription> descriptions;
        // A topic created a moment ago may not have reached the broker's metadata cache yet.
        for (int attempt = 1; ; attempt++) {
            try {
                descriptions = admin.describeTopics(topics).allTopicNames().get(30, TimeUnit.SECONDS);
                break;
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof UnknownTopicOrPartitionException) || attempt == 50) throw e;
                Thread.sleep(100);
            }
        }
        Map<String, Integer> partitions = new TreeMap<>();
        descriptions.forEach((topic, d) -> partitions.put(topic, d.partitions().size()));
        return partitions;
    }
}
