"""Reading KFP IR (PipelineSpec): loading packages, validation, scope paths."""
