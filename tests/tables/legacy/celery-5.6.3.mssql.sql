CREATE SEQUENCE task_id_sequence
;
CREATE TABLE celery_taskmeta (
	id BIGINT NOT NULL, 
	task_id VARCHAR(155) NULL, 
	status VARCHAR(50) NULL, 
	result VARBINARY(max) NULL, 
	date_done DATETIME NULL, 
	traceback VARCHAR(max) NULL, 
	name VARCHAR(155) NULL, 
	args VARBINARY(max) NULL, 
	kwargs VARBINARY(max) NULL, 
	worker VARCHAR(155) NULL, 
	retries INTEGER NULL, 
	queue VARCHAR(155) NULL, 
	PRIMARY KEY (id), 
	UNIQUE (task_id)
)
;
CREATE INDEX ix_celery_taskmeta_date_done ON celery_taskmeta (date_done)
;
CREATE SEQUENCE taskset_id_sequence
;
CREATE TABLE celery_tasksetmeta (
	id BIGINT NOT NULL, 
	taskset_id VARCHAR(155) NULL, 
	result VARBINARY(max) NULL, 
	date_done DATETIME NULL, 
	PRIMARY KEY (id), 
	UNIQUE (taskset_id)
)
;
CREATE INDEX ix_celery_tasksetmeta_date_done ON celery_tasksetmeta (date_done)
;
