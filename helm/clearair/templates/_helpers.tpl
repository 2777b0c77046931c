{{/* Every service of the mesh, the public one first. */}}
{{- define "clearair.services" -}}
orchestrator quality segmentation degradation restoration
{{- end -}}

{{/* The model services, in the order the orchestrator calls them. */}}
{{- define "clearair.models" -}}
quality segmentation degradation restoration
{{- end -}}

{{/* Release-scoped name: the release name, or release-chart when it lacks the chart name. */}}
{{- define "clearair.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of one service's objects: <fullname>-<service>. Call with (list $ "quality"). */}}
{{- define "clearair.serviceName" -}}
{{- printf "%s-%s" (include "clearair.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "clearair.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clearair-mesh
{{- end -}}

{{/* Selector labels of one service. Call with (list $ "quality"). */}}
{{- define "clearair.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "clearair.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "clearair.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image of one service. Call with (list $ "quality"). */}}
{{- define "clearair.image" -}}
{{- $root := index . 0 -}}
{{- $image := $root.Values.image -}}
{{- $tag := default $root.Chart.AppVersion $image.tag -}}
{{- if $image.registry -}}
{{- printf "%s/%s/%s:%s" $image.registry $image.repository (index . 1) $tag -}}
{{- else -}}
{{- printf "%s/%s:%s" $image.repository (index . 1) $tag -}}
{{- end -}}
{{- end -}}

{{/* Environment prefix of one service's configuration, e.g. CLEARAIR_QUALITY. */}}
{{- define "clearair.envPrefix" -}}
{{- printf "CLEARAIR_%s" (upper .) -}}
{{- end -}}

{{/* Checks that the values can work; fails the render with the reason otherwise. */}}
{{- define "clearair.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (ne (include "clearair.tlsByRole" .) "true") -}}
{{- fail "tls.enabled needs certificates: tls.certManager.issuerRef (the chart asks cert-manager for them), tls.serverSecret and tls.clientSecret (cert-manager's layout), or tls.existingSecret (ca.pem, server.pem, server.key, client.pem, client.key)" -}}
{{- end -}}
{{- if and .Values.tls.enabled (eq (include "clearair.tlsByRole" .) "true") (not .Values.tls.certManager.issuerRef.name) (not (and .Values.tls.serverSecret .Values.tls.clientSecret)) -}}
{{- fail "tls.serverSecret and tls.clientSecret go together (or set tls.certManager.issuerRef to have both made)" -}}
{{- end -}}
{{- if not (has .Values.backendProfile (list "embedded" "production")) -}}
{{- fail (printf "backendProfile must be embedded or production, not %q" .Values.backendProfile) -}}
{{- end -}}
{{- if and (eq .Values.backendProfile "production") (not (or .Values.modelStore.existingClaim .Values.modelStore.image)) -}}
{{- fail "backendProfile production needs the models: modelStore.existingClaim (a PVC) or modelStore.image" -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.existingSecret) -}}
{{- fail "auth.enabled needs auth.existingSecret: a Secret holding the bearer token" -}}
{{- end -}}
{{- range $name := splitList " " (include "clearair.services" .) -}}
{{- $svc := index $.Values.services $name -}}
{{- if and $.Values.services.orchestrator.enabled (not $svc.enabled) -}}
{{- fail (printf "services.%s.enabled is false but the orchestrator needs it" $name) -}}
{{- end -}}
{{- if not (has $svc.autoscaling.metric (list "clearair_saturation" "clearair_in_flight" "clearair_queue_depth")) -}}
{{- fail (printf "services.%s.autoscaling.metric must be clearair_saturation, clearair_in_flight or clearair_queue_depth (the metrics deploy/prometheus/adapter-values.yaml serves)" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One service's values, with its `production` block applied in the production
     backendProfile. Call with (list $ "quality"); returns YAML (use fromYaml). */}}
{{- define "clearair.serviceValues" -}}
{{- $root := index . 0 -}}
{{- $svc := deepCopy (index $root.Values.services (index . 1)) -}}
{{- if and (eq $root.Values.backendProfile "production") $svc.production -}}
{{- $svc = mergeOverwrite $svc $svc.production -}}
{{- end -}}
{{- toYaml $svc -}}
{{- end -}}

{{/* The environment that switches one model service to its production backend, read from
     /models, on CUDA. Call with (list $ "quality"). */}}
{{- define "clearair.productionEnv" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $prefix := include "clearair.envPrefix" $name -}}
{{- $files := $root.Values.modelStore.files -}}
{{- if eq $name "quality" }}
- {name: {{ $prefix }}__BACKEND, value: torchscript}
- {name: {{ $prefix }}__TORCHSCRIPT__MODULE, value: /models/{{ $files.quality }}}
- {name: {{ $prefix }}__DEVICE, value: cuda}
{{- else if eq $name "segmentation" }}
- {name: {{ $prefix }}__BACKEND, value: torchscript}
- {name: {{ $prefix }}__TORCHSCRIPT__MODULE, value: /models/{{ $files.segmentation }}}
- {name: {{ $prefix }}__DEVICE, value: cuda}
{{- else if eq $name "degradation" }}
- {name: {{ $prefix }}__BACKEND, value: torchscript}
- {name: {{ $prefix }}__TORCHSCRIPT__MODULE, value: /models/{{ $files.degradation }}}
- {name: {{ $prefix }}__MODEL__DEVICE, value: cuda}
- {name: {{ $prefix }}__GATE_VIEW, value: served}
{{- else if eq $name "restoration" }}
- {name: {{ $prefix }}__MODEL__WEIGHTS, value: /models/{{ $files.restoration }}}
- {name: {{ $prefix }}__MODEL__DEVICE, value: cuda}
- {name: {{ $prefix }}__BACKENDS__QUALITY, value: deqa}
- {name: {{ $prefix }}__BACKENDS__SEGMENTATION, value: sam2}
- {name: {{ $prefix }}__BACKENDS__DEGRADATION, value: daclip}
{{- /* The committed fallback stage was trained behind the compact restorer: off here. */}}
- {name: {{ $prefix }}__FALLBACK_REFINER, value: ""}
{{- end }}
{{- end -}}

{{/* Whether TLS uses one Secret per role in cert-manager's layout ("true") rather than the
     single tls.existingSecret. */}}
{{- define "clearair.tlsByRole" -}}
{{- if or .Values.tls.certManager.issuerRef.name .Values.tls.serverSecret .Values.tls.clientSecret -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* The Secret of one TLS role ("server" or "client"): the configured one, or the one the
     chart's cert-manager Certificate writes. Call with (list $ "server"). */}}
{{- define "clearair.tlsSecret" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $given := ternary $root.Values.tls.serverSecret $root.Values.tls.clientSecret (eq $role "server") -}}
{{- default (printf "%s-%s-tls" (include "clearair.fullname" $root) $role) $given -}}
{{- end -}}
