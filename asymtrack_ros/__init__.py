"""AsymTrack single-object tracking for robots: model, backends, tracker and a ROS 2 node.

The core (``model_info``, ``tracking``, ``backends``) runs without ROS; ``asymtrack_ros.ros``
is the thin rclpy adapter. torch is only imported by ``asymtrack_ros.model`` and the tools that
build, export or train models.
"""

from pkgutil import extend_path

# The generated interfaces (asymtrack_ros.msg and its typesupport libraries) may live in another
# install prefix than these sources (a development build); let Python find both halves.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
