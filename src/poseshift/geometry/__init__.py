"""Pose geometry: skeleton, rotations, cameras, bones, KCS features and Procrustes alignment."""

from poseshift.geometry.bones import (
    ancestor_matrix,
    bone_directions,
    bone_lengths,
    bones_to_joints,
    compose_bones,
    joints_to_bones,
    set_bone_lengths,
)
from poseshift.geometry.camera import (
    H36M_CAMERAS,
    H36M_S1_EXTRINSICS,
    INTRINSICS_DIM,
    camera_to_world,
    h36m_intrinsics,
    normalize_intrinsics,
    normalize_screen,
    project,
    project_pinhole,
    root_relative,
    unnormalize_screen,
    world_to_camera,
)
from poseshift.geometry.kcs import kcs, kcs_weights, part_kcs, part_mask, weighted_kcs
from poseshift.geometry.procrustes import procrustes_align
from poseshift.geometry.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_rotate,
    quaternion_slerp,
    quaternion_to_matrix,
    random_rotation,
)
from poseshift.geometry.skeleton import (
    H36M17,
    JOINT_NAMES,
    LEFT_JOINTS,
    NUM_BONES,
    NUM_JOINTS,
    PARENTS,
    RIGHT_JOINTS,
    ROOT,
    Skeleton,
)

__all__ = [
    # skeleton
    "H36M17",
    "JOINT_NAMES",
    "LEFT_JOINTS",
    "NUM_BONES",
    "NUM_JOINTS",
    "PARENTS",
    "RIGHT_JOINTS",
    "ROOT",
    "Skeleton",
    # rotations
    "axis_angle_to_matrix",
    "euler_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "quaternion_rotate",
    "quaternion_slerp",
    "quaternion_to_matrix",
    "random_rotation",
    # camera
    "H36M_CAMERAS",
    "H36M_S1_EXTRINSICS",
    "INTRINSICS_DIM",
    "camera_to_world",
    "h36m_intrinsics",
    "normalize_intrinsics",
    "normalize_screen",
    "project",
    "project_pinhole",
    "root_relative",
    "unnormalize_screen",
    "world_to_camera",
    # bones
    "ancestor_matrix",
    "bone_directions",
    "bone_lengths",
    "bones_to_joints",
    "compose_bones",
    "joints_to_bones",
    "set_bone_lengths",
    # kcs
    "kcs",
    "kcs_weights",
    "part_kcs",
    "part_mask",
    "weighted_kcs",
    # procrustes
    "procrustes_align",
]
