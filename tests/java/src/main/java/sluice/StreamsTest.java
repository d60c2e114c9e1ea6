package sluice;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Kafka Streams 4.1.1 against the broker, as a user runs it: an
 * at_least_once word count whose groupBy repartitions through an internal
 * topic and whose count lives in a state store with a compacted changelog,
 * both created by Streams itself (replication factor left to the broker).
 * Every word's final count must come out right, and the internal topics
 * must carry the cleanup.policy Streams asked for.
 *
 * Args: bootstrap, state dir. Prints "streams ok" and exits 0 on success.
 */
public final class StreamsTest {
    private static final int LINES = 300;
    private static final String[] WORDS = {"alpha", "beta", "gamma", "delta", "epsilon"};
    private static final long DEADLINE_MS = 120_000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String stateDir = args[1];
        String suffix = Long.toString(System.nanoTime());
        String input = "streams-in-" + suffix;
        String output = "streams-out-" + suffix;
        String app = "wordcount-" + suffix;

        Properties adminProps = new Properties();
        adminProps.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(adminProps)) {
            admin.createTopics(List.of(new NewTopic(input, 3, (short) 1), new NewTopic(output, 3, (short) 1)))
                .all().get();
        }

        // Line i holds words 0..(i % 5): word w appears in LINES - (lines
        // where i % 5 < w) lines.
        Map<String, Long> expected = new TreeMap<>();
        Properties producerProps = new Properties();
        producerProps.put("bootstrap.servers", bootstrap);
        producerProps.put("key.serializer", StringSerializer.class.getName());
        producerProps.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps)) {
            for (int i = 0; i < LINES; i++) {
                String[] words = Arrays.copyOf(WORDS, i % WORDS.length + 1);
                for (String w : words) {
                    expected.merge(w, 1L, Long::sum);
                }
                producer.send(new ProducerRecord<>(input, "line-" + i, String.join(" ", words)));
            }
            producer.flush();
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
            .flatMapValues(line -> Arrays.asList(line.split(" ")))
            .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
            .count(Materialized.as("word-counts"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        Properties streamsProps = new Properties();
        streamsProps.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        streamsProps.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        streamsProps.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        streamsProps.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        streamsProps.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 500);
        streamsProps.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        streamsProps.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        streamsProps.put("consumer.auto.offset.reset", "earliest");

        Map<String, Long> latest = new HashMap<>();
        try (KafkaStreams streams = new KafkaStreams(builder.build(), streamsProps)) {
            List<Throwable> failures = new ArrayList<>();
            streams.setUncaughtExceptionHandler(e -> {
                failures.add(e);
                return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.start();
            Properties consumerProps = new Properties();
            consumerProps.put("bootstrap.servers", bootstrap);
            consumerProps.put("group.id", "verify-" + suffix);
            consumerProps.put("auto.offset.reset", "earliest");
            consumerProps.put("key.deserializer", StringDeserializer.class.getName());
            consumerProps.put("value.deserializer", LongDeserializer.class.getName());
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(consumerProps)) {
                consumer.subscribe(List.of(output));
                while (!latest.equals(expected)) {
                    if (!failures.isEmpty()) {
                        throw new IllegalStateException("streams failed", failures.get(0));
                    }
                    if (System.currentTimeMillis() > deadline) {
                        throw new IllegalStateException("counts " + latest + " never reached " + expected
                            + " (streams state " + streams.state() + ")");
                    }
                    for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(500))) {
                        latest.put(r.key(), r.value());
                    }
                }
            }
            checkInternalTopics(bootstrap, app);
            streams.close(Duration.ofSeconds(30));
        }
        System.out.println("counts " + latest);
        System.out.println("streams ok");
    }

    /** The repartition topic is delete, the changelog compact, as Streams asked. */
    private static void checkInternalTopics(String bootstrap, String app) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            Set<String> topics = admin.listTopics().names().get();
            String repartition = app + "-word-counts-repartition";
            String changelog = app + "-word-counts-changelog";
            for (String name : List.of(repartition, changelog)) {
                if (!topics.contains(name)) {
                    throw new IllegalStateException(name + " was not created; topics: " + topics);
                }
            }
            Collection<ConfigResource> resources = List.of(
                new ConfigResource(ConfigResource.Type.TOPIC, repartition),
                new ConfigResource(ConfigResource.Type.TOPIC, changelog));
            Map<ConfigResource, Config> configs = admin.describeConfigs(resources).all().get();
            expectPolicy(configs, repartition, "delete");
            expectPolicy(configs, changelog, "compact");
        }
    }

    private static void expectPolicy(Map<ConfigResource, Config> configs, String topic, String policy) {
        ConfigEntry entry = configs.get(new ConfigResource(ConfigResource.Type.TOPIC, topic)).get("cleanup.policy");
        if (entry == null || !policy.equals(entry.value())) {
            throw new IllegalStateException(topic + " cleanup.policy is " + entry + ", wanted " + policy);
        }
        System.out.println(topic + " cleanup.policy=" + entry.value() + " (" + entry.source() + ")");
    }
}
