# Thin wrappers around the Rust exports in src/rust/src/lib.rs, one per
# export, with the same names. They are internal; R/*.R calls them and
# checks their result with rust_result() or rust_json().

save_model_ <- function(path, serialized) .Call(wrap__save_model_, path, serialized)
read_mlmodel_ <- function(dir) .Call(wrap__read_mlmodel_, dir)
read_crate_ <- function(path) .Call(wrap__read_crate_, path)
client_base_url_ <- function(tracking_uri, origin) .Call(wrap__client_base_url_, tracking_uri, origin)
get_experiment_by_name_ <- function(tracking_uri, origin, name) {
  .Call(wrap__get_experiment_by_name_, tracking_uri, origin, name)
}
create_experiment_ <- function(tracking_uri, origin, name, artifact_location, tags_json) {
  .Call(wrap__create_experiment_, tracking_uri, origin, name, artifact_location, tags_json)
}
create_run_ <- function(tracking_uri, origin, experiment_id, run_name, start_time, tags_json) {
  .Call(wrap__create_run_, tracking_uri, origin, experiment_id, run_name, start_time, tags_json)
}
get_run_ <- function(tracking_uri, origin, run_id) .Call(wrap__get_run_, tracking_uri, origin, run_id)
update_run_ <- function(tracking_uri, origin, run_id, status, end_time) {
  .Call(wrap__update_run_, tracking_uri, origin, run_id, status, end_time)
}
log_model_ <- function(tracking_uri, origin, run_id, artifact_path, serialized) {
  .Call(wrap__log_model_, tracking_uri, origin, run_id, artifact_path, serialized)
}
log_model_dir_ <- function(tracking_uri, origin, run_id, model_dir, artifact_path) {
  .Call(wrap__log_model_dir_, tracking_uri, origin, run_id, model_dir, artifact_path)
}
create_registered_model_ <- function(tracking_uri, origin, name, tags_json, description) {
  .Call(wrap__create_registered_model_, tracking_uri, origin, name, tags_json, description)
}
get_registered_model_ <- function(tracking_uri, origin, name) {
  .Call(wrap__get_registered_model_, tracking_uri, origin, name)
}
create_model_version_ <- function(tracking_uri, origin, name, source, run_id, tags_json, run_link,
                                  description, await_secs, profile) {
  .Call(wrap__create_model_version_, tracking_uri, origin, name, source, run_id, tags_json,
    run_link, description, await_secs, profile)
}
get_model_version_ <- function(tracking_uri, origin, name, version) {
  .Call(wrap__get_model_version_, tracking_uri, origin, name, version)
}
register_model_ <- function(tracking_uri, origin, model_uri, name, tags_json, await_secs, profile) {
  .Call(wrap__register_model_, tracking_uri, origin, model_uri, name, tags_json, await_secs, profile)
}
validate_model_ <- function(tracking_uri, origin, model_uri, profile) {
  .Call(wrap__validate_model_, tracking_uri, origin, model_uri, profile)
}
repair_model_ <- function(tracking_uri, origin, model_uri) {
  .Call(wrap__repair_model_, tracking_uri, origin, model_uri)
}
registry_ <- function(tracking_uri, origin, operation, args_json) {
  .Call(wrap__registry_, tracking_uri, origin, operation, args_json)
}
download_model_ <- function(tracking_uri, origin, model_uri, dest) {
  .Call(wrap__download_model_, tracking_uri, origin, model_uri, dest)
}
tracking_ <- function(tracking_uri, origin, operation, args_json) {
  .Call(wrap__tracking_, tracking_uri, origin, operation, args_json)
}
log_artifact_ <- function(tracking_uri, origin, run_id, path, artifact_path, progress) {
  .Call(wrap__log_artifact_, tracking_uri, origin, run_id, path, artifact_path, progress)
}
download_artifacts_ <- function(tracking_uri, origin, run_id, path, dest, progress) {
  .Call(wrap__download_artifacts_, tracking_uri, origin, run_id, path, dest, progress)
}
log_model_transfer_ <- function(tracking_uri, origin, run_id, artifact_path, serialized, progress) {
  .Call(wrap__log_model_transfer_, tracking_uri, origin, run_id, artifact_path, serialized, progress)
}
download_model_transfer_ <- function(tracking_uri, origin, model_uri, dest, progress) {
  .Call(wrap__download_model_transfer_, tracking_uri, origin, model_uri, dest, progress)
}
log_model_register_transfer_ <- function(tracking_uri, origin, run_id, artifact_root, artifact_path, serialized,
                                         name, await_secs, profile, progress) {
  .Call(wrap__log_model_register_transfer_, tracking_uri, origin, run_id, artifact_root, artifact_path,
    serialized, name, await_secs, profile, progress)
}
take_events_ <- function() .Call(wrap__take_events_)
