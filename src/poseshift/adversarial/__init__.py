"""The adversarial toolkit shared by every method: GAN losses, the fake pool, feedback and selection.

Plain functions (and one small stateful module, :class:`FakePool`) with no Lightning in them;
the methods in :mod:`poseshift.methods` compose them in their ``training_step``.
"""

from poseshift.adversarial.feedback import (
    FEEDBACK_GROUPS_H36M17,
    FEEDBACK_WEIGHTS_H36M17,
    feedback_exp_loss,
    feedback_inband_loss,
    feedback_matrix,
    feedback_ratio_loss,
    grouped_pose_error,
    hard_ratio_mask,
    projection_shape_loss,
    scale_normalized_error,
)
from poseshift.adversarial.losses import (
    angle_loss,
    bone_change_regularizer,
    clip_weights,
    gradient_penalty,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    lsgan_loss,
    range_loss,
    rectified_l2,
    wgan_critic_loss,
    wgan_generator_loss,
)
from poseshift.adversarial.pool import FakePool

__all__ = [
    "FEEDBACK_GROUPS_H36M17",
    "FEEDBACK_WEIGHTS_H36M17",
    "FakePool",
    "bone_change_regularizer",
    "angle_loss",
    "clip_weights",
    "feedback_exp_loss",
    "feedback_inband_loss",
    "feedback_matrix",
    "feedback_ratio_loss",
    "gradient_penalty",
    "grouped_pose_error",
    "hard_ratio_mask",
    "projection_shape_loss",
    "scale_normalized_error",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "lsgan_loss",
    "range_loss",
    "rectified_l2",
    "wgan_critic_loss",
    "wgan_generator_loss",
]
