"""AsymTrack single-object tracking for robots: model, backends, tracker and a ROS 2 node.

The core (``model_info``, ``tracking``, ``backends``) runs without ROS; ``asymtrack_ros.ros``
is the thin rclpy adapter. torch is only imported by ``asymtrack_ros.model`` and the tools that
build, export or train models.
"""

__version__ = "0.1.0"
