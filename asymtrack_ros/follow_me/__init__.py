"""What a follow-me controller steers by, as plain data (no ROS, no torch).

``camera``: the camera model from CameraInfo fields and undistortion; ``bearing``: line-of-sight
angles, normalised offset and angular size of a box; ``depth``: a robust target depth and its 3D
point; ``overlay``: image markers and the JPEG debug image; ``camera_tracking``: the MAVLink camera
tracking protocol's commands and status; ``mavlink_link``: the pymavlink connection. The ROS glue
is ``asymtrack_ros.ros.follow_me`` and ``asymtrack_ros.ros.mavlink_bridge``; see docs/FOLLOW_ME.md.
"""
