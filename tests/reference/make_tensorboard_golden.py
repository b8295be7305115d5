"""Writes tests/fixtures/tensorboard/golden.tfevents with TensorBoard's own protobufs and record writer:
the stream tests/tensorboard.rs must reproduce byte for byte. Needs `pip install tensorboard`.
Usage: python3 make_tensorboard_golden.py tests/fixtures/tensorboard/golden.tfevents"""
import sys
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

out = open(sys.argv[1], "wb")
w = RecordWriter(out)
w.write(event_pb2.Event(wall_time=1764590000.5, file_version="brain.Event:2").SerializeToString())
for step, (loss, top1) in enumerate([(2.25, 0.125), (1.5, 0.375), (float("nan"), 0.5)]):
    s = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag="train/loss", simple_value=loss),
        summary_pb2.Summary.Value(tag="test/top1", simple_value=top1),
    ])
    w.write(event_pb2.Event(wall_time=1764590100.25 + step, step=step + 1, summary=s).SerializeToString())
w.flush(); out.close()
