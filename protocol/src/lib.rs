//! Sans-io Kafka wire codec.
