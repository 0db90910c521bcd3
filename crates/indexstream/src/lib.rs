//! indexstream: a Kafka-style consumer for OpenSearch and Elasticsearch indices.
