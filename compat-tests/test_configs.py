"""Topic configs through confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient: describe (values, sources, read-only, synonyms), alter,
incremental alter, validation, durability across a crash."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource)

from clients import admin, create_topic

pytestmark = pytest.mark.timeout(90)




def c_describe(b, name, kind=ConfigResource.Type.TOPIC):
    res = ConfigResource(kind, name)
    a = admin(b)
    return a.describe_configs([res], request_timeout=15)[res].result(timeout=20)


def c_incremental(b, name, entries):
    res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
    a = admin(b)
    a.incremental_alter_configs([res], request_timeout=15)[res].result(timeout=20)


def test_confluent_describe_shows_every_config_with_its_source(broker_factory):
    b = broker_factory(extra_args=["--log-retention-ms", "3600000"])
    create_topic(b, "described", config={"cleanup.policy": "compact"})
    configs = c_describe(b, "described")
    for name in ["cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
                 "segment.ms", "max.message.bytes", "compression.type", "min.insync.replicas"]:
        assert name in configs, name
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["segment.bytes"].is_default
    assert not configs["retention.ms"].is_read_only
    assert not any(c.is_sensitive for c in configs.values())
    syns = [(s.name, s.source) for s in configs["retention.ms"].synonyms.values()]
    assert ("log.retention.ms", ConfigSource.STATIC_BROKER_CONFIG.value) in syns

    broker_cfg = c_describe(b, "1", ConfigResource.Type.BROKER)
    assert broker_cfg["log.retention.ms"].value == "3600000"
    assert broker_cfg["log.retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert broker_cfg["log.segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert broker_cfg["num.partitions"].is_read_only


@pytest.mark.disk
def test_confluent_incremental_set_append_subtract_delete_survive_a_crash(broker):
    create_topic(broker, "inc")
    c_incremental(broker, "inc", [
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    configs = c_describe(broker, "inc")
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "delete,compact"

    broker.restart(graceful=False)
    configs = c_describe(broker, "inc")
    assert configs["retention.ms"].value == "1000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    c_incremental(broker, "inc", [
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT),
    ])
    configs = c_describe(broker, "inc")
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"


def test_confluent_alter_configs_replaces_the_override_set(broker):
    create_topic(broker, "legacy", config={"retention.ms": "5000"})
    res = ConfigResource(ConfigResource.Type.TOPIC, "legacy",
                         set_config={"segment.bytes": "1048576"})
    a = admin(broker)
    a.alter_configs([res], request_timeout=15)[res].result(timeout=20)
    configs = c_describe(broker, "legacy")
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_invalid_and_unknown_configs_are_refused_with_invalid_config(broker):
    with pytest.raises(KafkaException) as err:
        create_topic(broker, "badcfg", config={"no.such.config": "1"})
    assert err.value.args[0].code() == 40  # INVALID_CONFIG
    assert "Unknown topic config name" in str(err.value)

    create_topic(broker, "goodcfg")
    for entry in [ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("cleanup.policy", "shred", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)]:
        with pytest.raises(KafkaException) as err:
            c_incremental(broker, "goodcfg", [entry])
        assert err.value.args[0].code() == 40, entry
    with pytest.raises(KafkaException) as err:
        c_describe(broker, "missing-topic")
    assert err.value.args[0].code() == 3  # UNKNOWN_TOPIC_OR_PARTITION


def test_max_message_bytes_gives_message_too_large(broker):
    from clients import c_produce, c_producer
    create_topic(broker, "small-msgs", config={"max.message.bytes": "500"})
    # One record per batch, so only the big one can fail.
    reports = c_produce(c_producer(broker.bootstrap, batch_num_messages=1), "small-msgs",
                        [dict(value=b"x" * 2000), dict(value=b"ok")])
    errs = [err for err, _m in reports]
    assert errs[0] is not None and errs[0].code() == 10  # MSG_SIZE_TOO_LARGE
    assert errs[1] is None


def test_compacted_topic_refuses_keyless_records(broker):
    from clients import c_produce, c_producer
    create_topic(broker, "compacted", config={"cleanup.policy": "compact"})
    reports = c_produce(c_producer(broker.bootstrap, batch_num_messages=1), "compacted",
                        [dict(value=b"no key"), dict(key=b"k", value=b"keyed")])
    errs = [err for err, _m in reports]
    assert errs[0] is not None and errs[0].code() == 87, errs[0]  # INVALID_RECORD
    assert errs[1] is None


def test_keyless_records_in_a_batch_are_named_per_record(broker):
    """KIP-467: the broker names the bad records of a refused batch, so the
    clients fail those with INVALID_RECORD and the rest as collateral."""
    from confluent_kafka import Producer
    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError

    create_topic(broker, "compacted-batch", config={"cleanup.policy": "compact"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 500,
                         "message.timeout.ms": 15000})
    reports = {}
    for i, key in enumerate([b"a", None, b"b", None]):
        producer.produce("compacted-batch", value=b"v%d" % i, key=key, partition=0,
                         on_delivery=lambda err, _m, i=i: reports.__setitem__(i, err))
    assert producer.flush(20) == 0
    codes = [reports[i].code() if reports[i] else None for i in range(4)]
    # 87 INVALID_RECORD for the keyless ones; librdkafka's -138
    # (_INVALID_DIFFERENT_RECORD) for the keyed ones failed with them.
    assert codes == [-138, 87, -138, 87], [reports[i] for i in range(4)]

    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=500)
    try:
        futures = [kp.send("compacted-batch", value=b"x", key=k, partition=0)
                   for k in [b"a", None, b"b"]]
        errors = []
        for f in futures:
            try:
                f.get(timeout=15)
                errors.append(None)
            except Exception as e:  # noqa: BLE001 - the error is the point
                errors.append(e)
    finally:
        kp.close(timeout=5)
    assert all(e is not None for e in errors), errors
    assert isinstance(errors[1], InvalidRecordError), errors
    assert "record 1 has no key" in str(errors[1]), errors
    assert not isinstance(errors[0], InvalidRecordError), errors


def test_kafka_python_describe_and_alter_configs(broker):
    from kafka.admin import ConfigResource as KRes
    from kafka.admin import ConfigResourceType, KafkaAdminClient

    create_topic(broker, "kp-cfg")
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        resp = client.alter_configs([KRes(ConfigResourceType.TOPIC, "kp-cfg",
                                          configs={"retention.ms": "1000"})])
        assert [r[0] for r in resp.resources] == [0]

        [resp] = client.describe_configs([KRes(ConfigResourceType.TOPIC, "kp-cfg")],
                                         include_synonyms=True)
        (error_code, _msg, _type, name, entries) = resp.resources[0]
        assert (error_code, name) == (0, "kp-cfg")
        by_name = {e[0]: e for e in entries}
        assert by_name["retention.ms"][1] == "1000"
        assert by_name["retention.ms"][3] == 1  # DYNAMIC_TOPIC_CONFIG
        assert by_name["segment.bytes"][3] == 5  # DEFAULT_CONFIG

        [resp] = client.describe_configs([KRes(ConfigResourceType.BROKER, "1")])
        (error_code, _msg, _type, _name, entries) = resp.resources[0]
        assert error_code == 0
        assert {e[0] for e in entries} >= {"log.retention.hours", "log.segment.bytes"}

        resp = client.alter_configs([KRes(ConfigResourceType.TOPIC, "kp-cfg",
                                          configs={"cleanup.policy": "nonsense"})])
        assert resp.resources[0][0] == 40
    finally:
        client.close()
