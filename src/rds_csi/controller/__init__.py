"""The controller's use cases between the CSI servicer and the domain packages: the VolumeAttachment sync and
node directory adapters, and the orphan sweeps."""
