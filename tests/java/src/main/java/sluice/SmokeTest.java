package sluice;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The Java client (idempotent producer by default) against Sluice: admin, produce, consume. */
public final class SmokeTest {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = "java-smoke";
        int count = 1000;
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);

        try (Admin admin = Admin.create(common)) {
            admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
            int expected = args.length > 1 ? Integer.parseInt(args[1]) : 1;
            int nodes = admin.describeCluster().nodes().get().size();
            check(nodes == expected, "describeCluster nodes " + nodes + ", expected " + expected);
            check(admin.listTopics().names().get().contains(topic), "listTopics");
        }

        Properties p = new Properties();
        p.putAll(common);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("compression.type", "zstd");
        List<RecordMetadata> acked = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < count; i++) {
                acked.add(producer.send(new ProducerRecord<>(topic, "k" + (i % 10), "v" + i)).get());
            }
        }

        Properties c = new Properties();
        c.putAll(common);
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", StringDeserializer.class.getName());
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            List<TopicPartition> partitions = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            check(ends.values().stream().mapToLong(Long::longValue).sum() == count, "endOffsets " + ends);
            long deadline = System.currentTimeMillis() + 30_000;
            while (values.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    values.add(r.value());
                }
            }
        }
        check(values.size() == count, "consumed " + values.size() + " of " + count);
        check(values.stream().distinct().count() == count, "duplicates");
        System.out.println("java smoke: " + count + " produced (idempotent, zstd) and consumed");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }
}
