// Package kafkatest is the public package kafkatest as snaplog's own tests
// use it: the same functions, with the instructions of a skipped or failed
// test naming this repository's scripts/kafka.sh and make test. See package
// github.com/snaplog/snaplog/kafkatest for where the brokers come from.
package kafkatest
