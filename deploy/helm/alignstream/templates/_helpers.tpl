{{- define "alignstream.fullname" -}}
{{- printf "%s-alignstream" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alignstream.labels" -}}
app.kubernetes.io/name: alignstream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "alignstream.selector" -}}
app.kubernetes.io/name: alignstream
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* Input topic and partition count of each consumer (kept equal to shared/topics.py by
     tests/unit/test_deploy.py): autoscaling never exceeds the partitions. */}}
{{- define "alignstream.inputs" -}}
ingest: {topic: rules.events, partitions: 6}
retrieval: {topic: chat.requests, partitions: 6}
grading: {topic: exam.answers, partitions: 6}
generation: {topic: chat.grounded, partitions: 6}
{{- end -}}

{{- define "alignstream.kafkaBootstrap" -}}
{{- if .Values.kafka.deploy -}}
{{ include "alignstream.fullname" . }}-kafka:9092
{{- else -}}
{{ required "kafka.bootstrap is required unless kafka.deploy is true" .Values.kafka.bootstrap }}
{{- end -}}
{{- end -}}

{{- define "alignstream.redisSecret" -}}
{{- if .Values.redis.deploy -}}
{{ include "alignstream.fullname" . }}-redis-url
{{- else -}}
{{ required "redis.existingSecret is required unless redis.deploy is true" .Values.redis.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "alignstream.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{ printf "%s:%s" .image.repository $tag }}
{{- end -}}

{{- define "alignstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "alignstream.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}
