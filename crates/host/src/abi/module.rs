//! A loaded module as the host uses it: its manifest, and the factory of
//! its instances and prepared triggers.

use std::ffi::{CStr, c_char};
use std::fmt;
use std::path::Path;
use std::ptr;
use std::sync::{Arc, RwLock};

use iom::{IOM_ABI_VERSION, IomHostCallbacks};

use super::errors::{LoadError, c_string};
use super::events::{
    EventSink, SinkBox, on_fire_trigger, on_fire_trigger_ex, on_fire_trigger_flow, on_log,
    on_status_changed,
};
use super::instance::{Instance, iom_strs, slice_ptr};
use super::library::{Api, ModuleSource};
use super::prepared::PreparedTrigger;
use crate::manifest::ModuleManifest;

/// A loaded IO module: its entry points and its manifest.
pub struct Module {
    api: Arc<Api>,
    source: ModuleSource,
    manifest_text: String,
    manifest: ModuleManifest,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("source", &self.source)
            .field("name", &self.manifest.module.name)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// Loads the shared library at `path`, checks that it implements ABI
    /// version 1, resolves every `iom_*` function and reads the manifest.
    pub fn load(path: &Path) -> Result<Module, LoadError> {
        let (api, module_manifest) = Api::open(path)?;
        Module::from_table(ModuleSource::File(path.to_path_buf()), api, module_manifest)
    }

    /// The wsio module linked into this executable, through the same
    /// function table as a loaded one.
    pub fn built_in() -> Result<Module, LoadError> {
        let (api, module_manifest) = Api::built_in()?;
        Module::from_table(ModuleSource::BuiltIn, api, module_manifest)
    }

    /// [`Module::load`] for a file, [`Module::built_in`] otherwise.
    pub fn open(source: &ModuleSource) -> Result<Module, LoadError> {
        match source {
            ModuleSource::File(path) => Module::load(path),
            ModuleSource::BuiltIn => Module::built_in(),
        }
    }

    /// Reads the manifest through a resolved table: from here on, a
    /// built-in module and a loaded one are the same.
    fn from_table(
        source: ModuleSource,
        api: Api,
        module_manifest: iom::ModuleManifestFn,
    ) -> Result<Module, LoadError> {
        // SAFETY: returns a module-owned string valid while the library is
        // loaded (it is: `api` owns the library, or the module is part of
        // this executable); copied before use.
        let text = unsafe { module_manifest() };
        if text.is_null() {
            return Err(LoadError::Manifest {
                source,
                reason: "iom_module_manifest() returned NULL".to_string(),
            });
        }
        // SAFETY: non-NULL, NUL-terminated, valid while loaded (see above).
        let manifest_text = match unsafe { CStr::from_ptr(text) }.to_str() {
            Ok(text) => text.to_string(),
            Err(_) => {
                return Err(LoadError::Manifest {
                    source,
                    reason: "the manifest is not valid UTF-8".to_string(),
                });
            }
        };
        let manifest = match ModuleManifest::parse(&manifest_text) {
            Ok(manifest) => manifest,
            Err(reason) => return Err(LoadError::Manifest { source, reason }),
        };

        Ok(Module {
            api: Arc::new(api),
            source,
            manifest_text,
            manifest,
        })
    }

    /// Where the module's functions come from (its file, or built-in).
    pub fn source(&self) -> &ModuleSource {
        &self.source
    }

    /// The manifest exactly as the module returned it.
    pub fn manifest_text(&self) -> &str {
        &self.manifest_text
    }

    pub fn manifest(&self) -> &ModuleManifest {
        &self.manifest
    }

    /// The module implements flow control (`iom_instance_resume`): a sink
    /// may refuse its `fire_trigger_flow` calls, the module holds them.
    pub fn has_flow_control(&self) -> bool {
        self.api.instance_resume.is_some()
    }

    /// Creates an instance (`iom_instance_create`). `properties_json` is a
    /// JSON object of instance properties; `sink` receives every callback of
    /// this instance until it is destroyed. The error is the module's message
    /// naming the bad property.
    pub fn create_instance(
        &self,
        id: u64,
        properties_json: &str,
        sink: Arc<dyn EventSink>,
    ) -> Result<Instance, String> {
        let properties = c_string("instance properties", properties_json).map_err(|e| e.message)?;
        // Boxed: the callbacks get a thin pointer to a fat `dyn EventSink`.
        let sink: *mut Arc<dyn EventSink> = Box::into_raw(SinkBox::new(sink));
        let callbacks = IomHostCallbacks {
            struct_size: size_of::<IomHostCallbacks>() as u32,
            abi_version: IOM_ABI_VERSION,
            user_data: sink.cast(),
            fire_trigger: Some(on_fire_trigger),
            status_changed: Some(on_status_changed),
            log: Some(on_log),
            fire_trigger_ex: Some(on_fire_trigger_ex),
            // Offered only to a module that can be told to resume.
            fire_trigger_flow: self
                .api
                .instance_resume
                .map(|_| on_fire_trigger_flow as iom::FireTriggerFlowFn),
        };
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: all pointers are valid for the call (the callbacks struct is
        // copied by the module); `error` receives a module string or NULL.
        let handle =
            unsafe { (self.api.instance_create)(&callbacks, id, properties.as_ptr(), &mut error) };
        if handle.is_null() {
            // SAFETY: `error` is what the call stored, freed only here.
            let message = unsafe { self.api.take_error(error) };
            // SAFETY: no instance exists, so the module holds no copy of
            // user_data; the box is ours again.
            drop(unsafe { Box::from_raw(sink) });
            return Err(message);
        }
        if !error.is_null() {
            // A success with a message is unusual; free it rather than leak.
            // SAFETY: as above.
            let _ = unsafe { self.api.take_error(error) };
        }
        Ok(Instance {
            api: self.api.clone(),
            id,
            handle: RwLock::new(handle),
            sink,
        })
    }

    /// Compiles a project trigger's properties (`iom_trigger_prepare` with no
    /// instance, so wires can be checked before any instance starts).
    /// What `action` would do with `variables`, without running it
    /// (`iom_action_preview`): its properties, given or default, with the
    /// placeholders filled and secrets reading "(secret)". None when the
    /// module does not export it; Err with the module's message when
    /// running it would be refused.
    pub fn preview_action(
        &self,
        action: &str,
        properties_json: &str,
        variables: &[Vec<u8>],
    ) -> Option<Result<serde_json::Map<String, serde_json::Value>, String>> {
        let preview = self.api.action_preview?;
        Some((|| {
            let action = c_string("action name", action).map_err(|e| e.message)?;
            let properties =
                c_string("action properties", properties_json).map_err(|e| e.message)?;
            let variables = iom_strs(variables);
            let mut error: *mut c_char = ptr::null_mut();
            // SAFETY: strings and the variables array (with the ranges it
            // borrows) are valid for the call; `error` receives a module
            // string or NULL.
            let text = unsafe {
                preview(
                    action.as_ptr(),
                    properties.as_ptr(),
                    slice_ptr(&variables),
                    variables.len(),
                    &mut error,
                )
            };
            // SAFETY: what the call returned, ours to free, freed there.
            let Some(text) = (unsafe { self.api.take_string(text) }) else {
                // SAFETY: `error` is what the call stored, freed only here.
                return Err(unsafe { self.api.take_error(error) });
            };
            if !error.is_null() {
                // SAFETY: as above.
                let _ = unsafe { self.api.take_error(error) };
            }
            match serde_json::from_str(&text) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                _ => Err(format!(
                    "the module's preview is not a JSON object: {}",
                    crate::state::shorten(text.as_bytes())
                )),
            }
        })())
    }

    pub fn prepare_trigger(
        &self,
        trigger: &str,
        properties_json: &str,
    ) -> Result<PreparedTrigger, String> {
        let trigger = c_string("trigger name", trigger).map_err(|e| e.message)?;
        let properties = c_string("trigger properties", properties_json).map_err(|e| e.message)?;
        let mut error: *mut c_char = ptr::null_mut();
        // SAFETY: NULL instance is allowed by the header; strings valid for
        // the call; `error` receives a module string or NULL.
        let raw = unsafe {
            (self.api.trigger_prepare)(
                ptr::null_mut(),
                trigger.as_ptr(),
                properties.as_ptr(),
                &mut error,
            )
        };
        if raw.is_null() {
            // SAFETY: `error` is what the call stored, freed only here.
            return Err(unsafe { self.api.take_error(error) });
        }
        if !error.is_null() {
            // SAFETY: as above.
            let _ = unsafe { self.api.take_error(error) };
        }
        Ok(PreparedTrigger {
            api: self.api.clone(),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_a_missing_file_names_the_path() {
        let err = Module::load(Path::new("/nonexistent/libnothing.so")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/libnothing.so"), "{text}");
    }

    #[test]
    fn the_built_in_module_is_wsio_through_the_same_table() {
        let module = Module::built_in().unwrap();
        assert_eq!(module.source(), &ModuleSource::BuiltIn);
        assert_eq!(module.manifest_text(), wsio::MANIFEST_TOML);
        assert!(module.has_flow_control());
        // A call through the table: a trigger the manifest does not declare
        // is refused with the module's own message.
        let Err(error) = module.prepare_trigger("No Such Trigger", "{}") else {
            panic!("an undeclared trigger was prepared");
        };
        assert!(error.contains("No Such Trigger"), "{error}");
        assert!(module.prepare_trigger("Messages Received", "{}").is_ok());
    }
}
