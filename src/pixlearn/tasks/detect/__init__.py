"""Object detection and instance segmentation on the engine (importing it loads no torch).

``detections`` (:class:`~pixlearn.tasks.detect.detections.Detections`, the :class:`~pixlearn.tasks.detect.detections.Detector`
protocol) is what every producer and consumer of boxes speaks.
"""
